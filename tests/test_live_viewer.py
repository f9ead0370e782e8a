"""The live viewer: bodies handed over frame by frame reach a real page in headless Chromium."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from test_viewer import SCREENSHOT_ENV_VAR, _free_port, _settled_screenshot, chromium  # noqa: F401 (a fixture)

from egoallo.body import BodyModel
from egoallo.live import LiveConfig, LiveEstimator
from egoallo.prior.checkpoint import load_denoiser
from test_live import walk

pytest.importorskip("viser")


def test_live_viewer_updates_in_headless_chromium(chromium, tiny_checkpoint, tmp_path: Path):  # noqa: F811
    from egoallo.live.viewer import LiveViewer

    _, denoiser = load_denoiser(tiny_checkpoint)
    body = BodyModel.load_default()
    config = LiveConfig(window=16, hop=4, warmup=8, num_steps=2, guidance_iterations=1)
    estimator = LiveEstimator(denoiser, body, T_input_zup=np.eye(4), floor_z=0.0, config=config)
    frames = []
    for t, T in zip(*walk(2.0)):
        frames += estimator.push(int(t), T)
    viewer = LiveViewer(body, fps=30.0, port=_free_port())
    try:
        chromium.get(viewer.url)
        deadline = time.monotonic() + 30.0
        while not viewer.server.get_clients() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert viewer.server.get_clients(), "the page never connected to the viser server"
        for frame in frames[:20]:
            viewer.show(frame, estimator.betas, estimator.floor_z, estimator.T_input_zup)
            time.sleep(0.02)
        deadline = time.monotonic() + 30.0
        while viewer.frames_shown == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert viewer.frames_shown >= 1 and {"/body", "/cpf", "/floor", "/body/feet/left_foot"} <= viewer.nodes.keys()
        viewer.show(frames[-1], estimator.betas, estimator.floor_z, estimator.T_input_zup)

        def at_last_frame() -> bool:
            return np.allclose(viewer.nodes["/cpf"].position, frames[-1].T_world_cpf[:3, 3], atol=1e-5)

        deadline = time.monotonic() + 30.0
        while not at_last_frame() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert at_last_frame(), "the newest body was not drawn"
        png, share = _settled_screenshot(chromium, lambda share: share > 0.01)
        (tmp_path / "live.png").write_bytes(png)
        if os.environ.get(SCREENSHOT_ENV_VAR):
            Path(os.environ[SCREENSHOT_ENV_VAR]).with_name("live_viewer.png").write_bytes(png)
        assert share > 0.01, f"the 3D view is nearly blank ({share:.1%} drawn); screenshot: {tmp_path / 'live.png'}"
        errors = [entry for entry in chromium.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        viewer.close()
