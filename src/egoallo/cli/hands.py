"""`egoallo hands`: hand keypoints from egocentric video, written as hands.npz."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import tyro

from ..files import check_output, require_file


def detect(
    input: Annotated[Path, tyro.conf.Positional],
    out: Path = Path("hands.npz"),
    every: int = 1,
    intrinsics: Path | None = None,
    min_confidence: float = 0.5,
    force: bool = False,
) -> None:
    """Detect both hands in an Aria VRS or a video (MediaPipe Hands, CPU) and write hands.npz.

    Args:
        input: Aria .vrs recording (RGB stream and calibration), or a video file with --intrinsics.
        out: Output .npz (docs/hands.md); refuses to overwrite without --force.
        every: Detect on every N-th frame.
        intrinsics: Camera JSON for a video: model, width, height, intrinsics, T_cpf_camera (docs/hands.md).
        min_confidence: MediaPipe's palm detection and hand presence threshold.
    """
    check_output(out, (".npz",), force=force)
    require_file(input, "an Aria .vrs recording or a video")
    from ..hands import DetectSettings, detect_hands, summarize

    run = detect_hands(input, intrinsics, DetectSettings(every=every, min_confidence=min_confidence))
    run.detections.save(out, force=force)
    if run.cache_hit:
        print(f"reused cached detections {run.cache_file}")
    elif run.cache_file is None:
        print("no writable cache location: detections not cached")
    print(summarize(run.detections))
    print(f"wrote {out}")


def import_hamer(
    hamer: Annotated[Path, tyro.conf.Positional],
    out: Path = Path("hands.npz"),
    camera: Path | None = None,
    force: bool = False,
) -> None:
    """Convert per-frame HaMeR outputs (.npz or .json, docs/hands.md) to hands.npz.

    Args:
        hamer: HaMeR outputs in the documented layout.
        out: Output .npz; refuses to overwrite without --force.
        camera: The camera HaMeR ran on, unless the file carries it: an Aria .vrs or a camera JSON.
    """
    check_output(out, (".npz",), force=force)
    require_file(hamer, "HaMeR outputs (.npz or .json)")
    from ..hands import open_frames, read_hamer, summarize
    from ..inputs.camera_json import read_video_calibration

    hand_camera = None
    if camera is not None:
        hand_camera = open_frames(camera).camera if camera.suffix.lower() == ".vrs" else read_video_calibration(camera).camera
    detections = read_hamer(hamer, hand_camera)
    detections.save(out, force=force)
    print(summarize(detections))
    print(f"wrote {out}")

