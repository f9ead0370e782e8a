"""A screenshot of the live viewer: the shipped example replayed through `LiveEstimator` in real time,
drawn by `LiveViewer`, photographed in headless Chromium after `--seconds` of the stream.

    python benchmarks/live_viewer_screenshot.py --out live_viewer.png

Needs Chromium, its driver and selenium (the `test` extra), as the viewer tests do.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import torch

from egoallo.assets import EXAMPLE_TRAJECTORY
from egoallo.body import BodyModel
from egoallo.inputs.trajectory import read_trajectory
from egoallo.live import LiveConfig, LiveEstimator, live_sampling
from egoallo.live.viewer import LiveViewer
from egoallo.prior.checkpoint import load_denoiser

BROWSER_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--window-size=1280,800")


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("live_viewer.png"))
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    head = read_trajectory(EXAMPLE_TRAJECTORY, device_is_cpf=True)
    (checkpoint, steps, eta), (warmup_checkpoint, warmup_steps, warmup_eta) = live_sampling(None, None, None)
    config = LiveConfig(num_steps=steps, eta=eta, warmup_steps=warmup_steps, warmup_eta=warmup_eta)
    body = BodyModel.load_default()
    estimator = LiveEstimator(load_denoiser(checkpoint)[1], body, T_input_zup=head.T_input_world, config=config,
                              warmup_denoiser=load_denoiser(warmup_checkpoint)[1])
    viewer = LiveViewer(body, fps=30.0, port=free_port())
    chromium = browser()
    try:
        chromium.get(viewer.url)
        while not viewer.server.get_clients():
            time.sleep(0.2)
        poses = head.T_input_world @ head.T_world_cpf
        started = time.perf_counter()
        for k, (t, T) in enumerate(zip(head.timestamps_ns, poses)):
            if k / 30.0 > args.seconds:
                break
            time.sleep(max(0.0, started + k / 30.0 - time.perf_counter()))
            for frame in estimator.push(int(t), T):
                viewer.show(frame, estimator.betas, estimator.floor_z, estimator.T_input_zup)
        time.sleep(3.0)  # let the page draw the last body
        args.out.write_bytes(chromium.get_screenshot_as_png())
        print(f"wrote {args.out}: {viewer.frames_shown} bodies drawn, {np.median(estimator.stats.hop_seconds):.3f} s "
              "per hop (median)")
    finally:
        chromium.quit()
        viewer.close()


if __name__ == "__main__":
    main()
