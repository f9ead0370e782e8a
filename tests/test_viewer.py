"""`egoallo view`: the scene it builds, its errors, and a real page in headless Chromium."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from egoallo.assets import DEFAULT_CHECKPOINT, EXAMPLE_TRAJECTORY
from egoallo.body import BodyModel
from egoallo.cli.main import main
from egoallo.inference import SamplingConfig, estimate_body_motion, standing_eye_height
from egoallo.inputs.points import floor_from_trajectory
from egoallo.inputs.trajectory import read_trajectory
from egoallo.prior.checkpoint import load_denoiser
from egoallo.result import InferenceResult
from egoallo.viz.viewer import ResultViewer, SceneData

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
BROWSER_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--use-angle=swiftshader",  # WebGL in software
    "--enable-unsafe-swiftshader",
    "--window-size=1280,800",
)
SCREENSHOT_ENV_VAR = "EGOALLO_VIEWER_SCREENSHOT"


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.load_default()


@pytest.fixture(scope="module")
def result_path(body: BodyModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real result: the example trajectory's first 3 s, 2 samples of 2 denoising steps."""
    head = read_trajectory(EXAMPLE_TRAJECTORY, device_is_cpf=True).resample(30.0)
    head = dataclasses.replace(head, timestamps_ns=head.timestamps_ns[:90], T_world_cpf=head.T_world_cpf[:90])
    floor = floor_from_trajectory(head.T_world_cpf[:, 2, 3], standing_eye_height(body))
    _, denoiser = load_denoiser(DEFAULT_CHECKPOINT)
    result = estimate_body_motion(
        head, denoiser, body, floor_z=floor.z, config=SamplingConfig(num_samples=2, num_steps=2),
        metadata={"trajectory": {"path": str(EXAMPLE_TRAJECTORY), **head.metadata}},
    )  # fmt: skip
    return result.save(tmp_path_factory.mktemp("view") / "result.npz")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_v1_wrists(path: Path, timestamps_ns: np.ndarray, wrist_device: np.ndarray) -> None:
    """An Aria MPS v1 wrist-and-palm CSV: both hands tracked at `timestamps_ns` at `wrist_device` (2, 3)."""
    header = ["tracking_timestamp_us"]
    for side in ("left", "right"):
        header += [f"{side}_tracking_confidence"] + [
            f"t{a}_{side}_{part}_device" for part in ("wrist", "palm") for a in "xyz"
        ]
    rows = [
        [str(-(-t // 1000))]
        + [v for h in range(2) for v in ["1.0", *map(str, wrist_device[h]), *map(str, wrist_device[h])]]
        for t in timestamps_ns
    ]
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")


def test_scene_follows_the_result(result_path: Path, body: BodyModel):
    result = InferenceResult.load(result_path)
    scene = SceneData.from_result(result, body)
    assert scene.vertices.shape == (2, 90, body.v_template.shape[0], 3)
    assert scene.vertices.dtype == np.float32 and scene.faces.dtype == np.uint32
    # The head of the mesh is at the input CPF (between the eyes), its feet near the floor (z up here).
    head = result.T_world_cpf[None, :, None, :3, 3] - scene.origin  # the scene is drawn around its origin
    to_cpf = np.linalg.norm(scene.vertices - head, axis=-1).min(axis=-1)  # (S, T)
    assert to_cpf.max() < 0.15
    assert np.median(np.abs(scene.vertices[..., 2].min(axis=-1) - result.floor_z)) < 0.15
    np.testing.assert_allclose(scene.T_world_floor[2, 3], result.floor_z)
    np.testing.assert_allclose(scene.up, [0.0, 0.0, 1.0])
    assert scene.points is None and scene.wrists is None  # nothing recorded: skipped


def test_floor_and_up_follow_T_input_zup(result_path: Path, body: BodyModel):
    """A y-up input world: the floor plane's normal and the up direction are the input's +y."""
    result = InferenceResult.load(result_path)
    T_input_zup = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])  # z-up -> y-up
    moved = dataclasses.replace(
        result,
        T_input_zup=T_input_zup,
        T_world_cpf=T_input_zup @ result.T_world_cpf,
        T_world_root=(T_input_zup @ result.T_world_root).astype(np.float32),
    )
    scene = SceneData.from_result(moved, body)
    np.testing.assert_allclose(scene.up, [0.0, 1.0, 0.0])
    np.testing.assert_allclose(scene.T_world_floor[:3, 2], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(scene.T_world_floor[1, 3], result.floor_z)
    np.testing.assert_allclose(
        scene.vertices[..., 1].max(axis=-1),
        SceneData.from_result(result, body).vertices[..., 2].max(axis=-1),
        atol=1e-4,
    )


def test_wrists_are_reread_from_the_file_the_result_names(result_path: Path, body: BodyModel, tmp_path: Path):
    result = InferenceResult.load(result_path)
    wrist_device = np.array([[0.2, -0.35, 0.3], [-0.2, -0.35, 0.3]])  # (left, right) in the CPF (= device) frame
    csv = tmp_path / "wrist_and_palm_poses.csv"
    _write_v1_wrists(csv, result.timestamps_ns, wrist_device)
    with_wrists = dataclasses.replace(result, metadata={**result.metadata, "wrist_palm": {"source": str(csv)}})
    scene = SceneData.from_result(with_wrists, body)
    wrists = scene.wrists + scene.origin
    expected = (
        np.einsum("tij,hj->thi", result.T_world_cpf[:, :3, :3], wrist_device) + result.T_world_cpf[:, None, :3, 3]
    )
    assert wrists.shape == (90, 2, 3)
    np.testing.assert_allclose(wrists[:-1], expected[:-1], atol=1e-3)  # the last frame lies before its sample (µs)
    csv.unlink()
    assert SceneData.from_result(with_wrists, body).wrists is None  # file gone: skipped


def test_a_utm_scale_result_is_drawn_around_a_local_origin(result_path: Path, body: BodyModel):
    """5,400 km from the origin: the meshes are posed around the scene's float64 origin and match the same
    result near the origin within a millimetre (float32 posing there would move them in 0.5 m steps)."""
    result = InferenceResult.load(result_path)
    offset = np.array([5.4e6, -3.2e6, 0.0])

    def moved(T: np.ndarray) -> np.ndarray:
        T = T.astype(np.float64)
        T[..., :3, 3] += offset
        return T

    far = dataclasses.replace(result, joints_world=result.joints_world + offset, T_world_root=moved(result.T_world_root),
                              T_world_cpf=moved(result.T_world_cpf))  # T_input_zup: rotation only, as infer writes
    near_scene, far_scene = SceneData.from_result(result, body), SceneData.from_result(far, body)
    np.testing.assert_allclose(far_scene.origin - near_scene.origin, offset, atol=1e-6)
    assert np.abs(far_scene.vertices - near_scene.vertices).max() < 1e-3
    assert np.abs(far_scene.T_world_cpf[:, :3, 3] - near_scene.T_world_cpf[:, :3, 3]).max() < 1e-6


def test_clear_errors(result_path: Path, tmp_path: Path, capsys):
    assert main(["view", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz: file not found; expected a result.npz" in capsys.readouterr().err

    with np.load(result_path) as f:
        arrays = dict(f)
    np.savez(tmp_path / "old.npz", **{**arrays, "format_version": np.int64(0)})
    assert main(["view", str(tmp_path / "old.npz")]) == 2
    assert "result format version 0" in capsys.readouterr().err
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in arrays.items() if k != "contacts"})
    assert main(["view", str(tmp_path / "partial.npz")]) == 2
    assert "missing key 'contacts'" in capsys.readouterr().err

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["view", str(result_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port}" in err and "already in use" in err and "--port" in err and "Traceback" not in err


def _non_background_share(png: bytes) -> float:
    """Share of the 3D canvas's pixels (panel and notices cropped off) unlike the background (the corners' colour)."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    corners = [tuple(image[y, x]) for y in (0, -1) for x in (0, -1)]
    background = np.array(max(set(corners), key=corners.count))
    canvas = image[170:, 100:-360]
    return float((np.abs(canvas - background).max(axis=-1) > 12).mean())


def _settled_screenshot(browser, until, timeout_s: float = 30.0, settle_s: float = 1.5) -> tuple[bytes, float]:
    """A screenshot and its `_non_background_share`, `settle_s` after the share first satisfies `until`.

    The wait lets viser's fade-in and fade-out of nodes finish.
    """
    deadline = time.monotonic() + timeout_s
    while not until(_non_background_share(browser.get_screenshot_as_png())) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(settle_s)
    png = browser.get_screenshot_as_png()
    return png, _non_background_share(png)


@pytest.fixture
def chromium():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("headless browser test needs Chromium and its driver: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (in the test extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield browser
    browser.quit()


def test_viewer_page_in_headless_chromium(chromium, result_path: Path, body: BodyModel, tmp_path: Path):
    result = InferenceResult.load(result_path)
    rng = np.random.default_rng(0)
    points = np.concatenate(
        [rng.uniform(-2, 2, (2000, 3)) * [1, 1, 0] + [0, 0, result.floor_z], rng.uniform(-2, 2, (500, 3))]
    )
    viewer = ResultViewer(SceneData.from_result(result, body, points=points), port=_free_port())
    stop = threading.Event()
    player = threading.Thread(target=viewer.play, args=(stop,), daemon=True)
    player.start()
    try:
        expected = {
            "/body/sample_0",
            "/body/sample_1",
            "/body/sample_0/feet/left_foot",
            "/trajectory",
            "/floor",
            "/cpf",
            "/points",
        }
        assert expected <= viewer.nodes.keys()
        chromium.get(viewer.url)
        deadline = time.monotonic() + 30.0
        while not viewer.server.get_clients() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert viewer.server.get_clients(), "the page never connected to the viser server"
        first_frame = viewer.frame
        time.sleep(0.5)
        assert viewer.frame != first_frame, "playback did not advance"
        viewer.playing = False  # a still scene draws and settles faster in software WebGL
        png, share = _settled_screenshot(chromium, lambda share: share > 0.03)
        (tmp_path / "viewer.png").write_bytes(png)
        if os.environ.get(SCREENSHOT_ENV_VAR):
            Path(os.environ[SCREENSHOT_ENV_VAR]).write_bytes(png)
        assert share > 0.03, f"the 3D view is nearly blank ({share:.1%} drawn); screenshot: {tmp_path / 'viewer.png'}"

        for layer in ("/trajectory", "/cpf", "/floor", "/points"):  # what is left is the bodies and their feet
            viewer.nodes[layer].visible = False
        png, bodies = _settled_screenshot(chromium, lambda bodies: bodies < 0.8 * share)
        (tmp_path / "bodies.png").write_bytes(png)
        print(json.dumps({"screenshot": str(tmp_path / "viewer.png"), "non_background_share": round(share, 4),
                          "bodies_only_share": round(bodies, 4)}))  # fmt: skip
        assert 0.003 < bodies < 0.8 * share, f"bodies cover {bodies:.2%} of the view, the whole scene {share:.1%}"
        errors = [entry for entry in chromium.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        stop.set()
        viewer.close()
