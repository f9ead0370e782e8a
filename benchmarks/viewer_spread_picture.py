"""Pictures of the spread: one held-out window estimated with 8 samples and foot guidance (as `egoallo infer
--samples 8` runs it), shown by `egoallo view` in headless Chromium and drawn by `egoallo render --ghosts`.

    python benchmarks/viewer_spread_picture.py --dataset DIR/dataset.h5 --activity cmu/dance \
        --out docs/viewer_spread.png --render-out docs/render_spread.png

The window is the first full one of the first test clip of `--activity` (`source/activity`), from its
`--start` frame; its true head trajectory is the input, the floor the true one plus nothing (a picture, not a
metric). Needs Chromium, its driver and selenium (the `test` extra) for the viewer's picture.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_viewer_screenshot import browser, free_port  # noqa: E402

from egoallo.body import BodyModel  # noqa: E402
from egoallo.cli.main import main as egoallo  # noqa: E402
from egoallo.data.dataset import MotionDataset  # noqa: E402
from egoallo.inference import SamplingConfig, estimate_body_motion  # noqa: E402
from egoallo.inputs.trajectory import HeadTrajectory  # noqa: E402
from egoallo.prior.checkpoint import checkpoint_and_sampling, load_denoiser  # noqa: E402
from egoallo.result import InferenceResult  # noqa: E402
from egoallo.viz.viewer import ResultViewer, SceneData  # noqa: E402


def window_result(dataset: Path, activity: str, start: int, frames: int, samples: int) -> InferenceResult:
    """The window's estimate with `samples` samples and foot guidance, the true floor (z = 0) given."""
    data = MotionDataset(dataset, "test", None)
    clip = next(i for i in range(len(data.clip_ids))
                if f"{data.info(i).source}/{data.info(i).activity}" == activity and data.lengths[i] >= start + frames)
    w = data.window(clip, start, frames)
    timestamps = np.round(np.arange(frames) * 1e9 / 30.0).astype(np.int64)
    trajectory = HeadTrajectory(timestamps, w["T_world_cpf"].astype(np.float64), data.clip_ids[clip], {}, np.eye(3))
    checkpoint, steps, eta = checkpoint_and_sampling(None, None)
    config = SamplingConfig(num_samples=samples, num_steps=steps, eta=eta, guidance=frozenset({"feet"}))
    result = estimate_body_motion(trajectory, load_denoiser(checkpoint)[1], BodyModel.load_default(), floor_z=0.0,
                                  config=config, metadata={"clip": data.clip_ids[clip], "start": start})
    print(f"{data.clip_ids[clip]} frames {start}-{start + frames}: spread of the body joints median "
          f"{100 * np.median(result.joint_spread_m[:, :22]):.1f} cm, largest {100 * result.joint_spread_m[:, :22].max():.1f} cm")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--activity", default="cmu/dance")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--frame", type=int, default=64, help="the frame the viewer shows")
    parser.add_argument("--out", type=Path, default=Path("viewer_spread.png"))
    parser.add_argument("--render-out", type=Path, default=None)
    parser.add_argument("--render-frames", type=int, default=2, help="instants in the rendered picture")
    parser.add_argument("--wait", type=float, default=15.0, help="seconds the page gets to draw before the picture")
    args = parser.parse_args()
    result = window_result(args.dataset, args.activity, args.start, args.frames, args.samples)
    with tempfile.TemporaryDirectory() as folder:
        path = result.save(Path(folder) / "window.npz")
        if args.render_out is not None:
            assert egoallo(["render", str(path), "--out", str(args.render_out), "--frames", str(args.render_frames),
                            "--ghosts", "--force"]) == 0
    viewer = ResultViewer(SceneData.from_result(result), port=free_port(), title=args.activity)
    viewer.playing = False
    viewer.go_to(args.frame)
    chromium = browser()
    try:
        chromium.get(viewer.url)
        while not viewer.server.get_clients():
            time.sleep(0.2)
        time.sleep(args.wait)  # software WebGL: let the page draw the meshes
        args.out.write_bytes(chromium.get_screenshot_as_png())
        print(f"wrote {args.out}")
    finally:
        chromium.quit()
        viewer.close()


if __name__ == "__main__":
    main()
