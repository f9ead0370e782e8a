"""Camera models: FISHEYE624 and pinhole against projectaria-tools, Jacobians, validity, bad cameras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from aria_reference import projectaria_device_calibration

from egoallo.cameras import CameraError, CameraModel
from egoallo.inputs.calibration import load_calibration, load_rgb_camera, rgb_camera_from_aria

F64 = torch.float64
ARIA_FILES = ("aea_recording_rgb8frames.vrs", "adt_video_rgb3frames.vrs", "mps_online_calibration_first_line.jsonl")


def _points_in_view(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) points 0.1-3 m away within ~75° of the optical axis (beyond the RGB camera's field)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d[:, 2] = np.abs(d[:, 2]) * 1.2 + 0.3
    return d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0.1, 3.0, size=(n, 1))


def _aria_pixels(calib, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """projectaria-tools' projection: pixels (M, 2) of the points it accepts, and which (n,) it accepts."""
    projected = [calib.project(p) for p in points]
    ok = np.array([p is not None for p in projected])
    return np.stack([p for p in projected if p is not None]), ok


@pytest.mark.parametrize("name", ARIA_FILES)
def test_fisheye624_matches_projectaria(shared_dir: Path, name: str) -> None:
    device = projectaria_device_calibration(shared_dir / "aria" / name)
    calib = device.get_camera_calib("camera-rgb")
    calibration = load_calibration(shared_dir / "aria" / name)  # this project's reader (its own for JSON)
    camera = calibration.rgb_camera()
    assert camera.kind == "fisheye624" and (camera.width, camera.height) == tuple(calib.get_image_size())
    assert camera.valid_radius == calib.get_valid_radius()
    np.testing.assert_allclose(calibration.T_device_cpf, device.get_transform_device_cpf().to_matrix(), atol=1e-12)
    points = _points_in_view(3000)
    expected, accepted = _aria_pixels(calib, points)
    assert accepted.sum() > 1500
    pixels = camera.project(torch.from_numpy(points)).numpy()
    error = np.linalg.norm(pixels[accepted] - expected, axis=1)
    print(f"\n{name}: {accepted.sum()} points, max |ours - projectaria| = {error.max():.2e} px")
    assert error.max() < 1e-3
    # Visible = in front and inside the image's valid circle: what projectaria-tools projects.
    assert (camera.visible(torch.from_numpy(points)).numpy() == accepted).mean() > 0.998
    # T_cpf_camera is the device calibration's camera pose in the CPF.
    T = np.linalg.inv(calibration.T_device_cpf) @ calib.get_transform_device_camera().to_matrix()
    np.testing.assert_allclose(camera.T_cpf_camera, T, atol=1e-12)


def test_rescaled_and_sixteen_parameter_fisheye_match_projectaria(shared_dir: Path) -> None:
    device = projectaria_device_calibration(shared_dir / "aria" / ARIA_FILES[0])
    calib = device.get_camera_calib("camera-rgb")
    camera = rgb_camera_from_aria(calib, device.get_transform_device_cpf().to_matrix())
    points = _points_in_view(500, seed=1)
    half = calib.rescale(np.array([704, 704]), 0.5)
    expected, accepted = _aria_pixels(half, points)
    pixels = camera.rescaled(704, 704).project(torch.from_numpy(points)).numpy()
    assert np.abs(pixels[accepted] - expected).max() < 1e-3
    f = camera.params[:1]
    sixteen = CameraModel("fisheye624", np.concatenate([f, f, camera.params[1:]]), 1408, 1408, camera.T_cpf_camera)
    torch.testing.assert_close(sixteen.project(torch.from_numpy(points)), camera.project(torch.from_numpy(points)))
    with pytest.raises(CameraError, match="aspect ratio"):
        camera.rescaled(704, 500)


def test_pinhole_matches_projectaria_linear() -> None:
    aria_calibration = pytest.importorskip("projectaria_tools.core.calibration")
    from projectaria_tools.core.sophus import SE3

    calib = aria_calibration.get_linear_camera_calibration(640, 480, 500.0, "pinhole", SE3.from_matrix(np.eye(4)))
    camera = rgb_camera_from_aria(calib, np.eye(4))
    assert camera.kind == "pinhole"
    points = _points_in_view(500, seed=2)
    expected, accepted = _aria_pixels(calib, points)
    pixels = camera.project(torch.from_numpy(points)).numpy()
    assert np.abs(pixels[accepted] - expected).max() < 1e-6
    assert (camera.visible(torch.from_numpy(points)).numpy() == accepted).mean() > 0.998


@pytest.mark.parametrize("kind", ["fisheye624", "pinhole"])
def test_projection_jacobian_matches_autograd(shared_dir: Path, kind: str) -> None:
    camera = load_rgb_camera(shared_dir / "aria" / "mps_online_calibration_first_line.jsonl")
    if kind == "pinhole":
        camera = CameraModel("pinhole", torch.tensor([600.0, 610.0, 700.0, 710.0], dtype=F64), 1408, 1408, camera.T_cpf_camera)
    points = torch.from_numpy(_points_in_view(50, seed=3))
    points[0, :2] = 0.0  # on the optical axis
    pixels, J = camera.project_with_jacobian(points)
    torch.testing.assert_close(pixels, camera.project(points))
    auto = torch.autograd.functional.jacobian(lambda p: camera.project(p).sum(dim=0), points)  # (2, N, 3)
    torch.testing.assert_close(J, auto.permute(1, 0, 2), atol=1e-8, rtol=1e-8)
    with torch.no_grad():  # inference runs guidance without autograd
        torch.testing.assert_close(camera.project_with_jacobian(points)[1], J)


def test_visibility() -> None:
    camera = CameraModel.pinhole(500.0, 500.0, 319.5, 239.5, 640, 480, np.eye(4))
    points = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [2.0, 0.0, 1.0], [0.3, 0.2, 1.0]], dtype=F64)
    assert camera.in_front(points).tolist() == [True, False, True, True]
    assert camera.visible(points).tolist() == [True, False, False, True]
    assert camera.in_image(torch.tensor([[-0.5, -0.5], [639.49, 479.49], [639.5, 0.0]], dtype=F64)).tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": torch.tensor([0.0, 500.0, 320.0, 240.0], dtype=F64)}, "focal length must be positive"),
        ({"params": torch.tensor([-500.0, 500.0, 320.0, 240.0], dtype=F64)}, "focal length must be positive"),
        ({"params": torch.tensor([500.0, torch.nan, 320.0, 240.0], dtype=F64)}, "NaN or infinite"),
        ({"params": torch.tensor([500.0, 500.0, 320.0], dtype=F64)}, "expected 4 parameters"),
        ({"kind": "fisheye"}, "unknown"),
        ({"width": 0}, "image size must be positive"),
        ({"valid_radius": -1.0}, "valid radius"),
        ({"T_cpf_camera": torch.full((4, 4), torch.inf, dtype=F64)}, "T_cpf_camera: contains NaN or infinite"),
        ({"T_cpf_camera": 2 * torch.eye(4, dtype=F64)}, "T_cpf_camera"),
    ],
)
def test_degenerate_cameras_are_refused(change: dict, message: str) -> None:
    good = {"kind": "pinhole", "params": torch.tensor([500.0, 500.0, 320.0, 240.0], dtype=F64), "width": 640,
            "height": 480, "T_cpf_camera": torch.eye(4, dtype=F64)}
    CameraModel(**good)
    with pytest.raises(CameraError, match=message):
        CameraModel(**(good | change))
