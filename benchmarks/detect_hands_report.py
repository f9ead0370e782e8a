"""Hand detection on the real Aria recordings in ../shared/aria: results, CPU time, raw fisheye vs rectified.

Runs on one CPU core. Rewrites the report section of docs/hands.md and draws docs/hands_aria.png.

    python benchmarks/detect_hands_report.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
from projectaria_tools.core import calibration as aria_calibration
from projectaria_tools.core import data_provider

from egoallo.hands import detect_hands, open_frames
from egoallo.hands.mediapipe_hands import MediaPipeHands
from _common import ROOT, SHARED, cpu_model

RECORDINGS = ("aea_recording_rgb8frames.vrs", "adt_video_rgb3frames.vrs")
PINHOLES = ((768, 250.0), (1024, 300.0))  # (size, focal) of rectified views; 768/250 covers +-57 degrees
TIMING_REPEATS = 5
DOC, FIGURE = ROOT / "docs" / "hands.md", ROOT / "docs" / "hands_aria.png"
BEGIN, END = "<!-- report:begin -->", "<!-- report:end -->"
BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
         (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20))


def detection_table(path: Path) -> tuple[list[str], float]:
    """Markdown rows (frame, time, confidences) and the best-of-repeats detection time, ms/frame."""
    runs = [detect_hands(path, use_cache=False, progress=False).detections for _ in range(TIMING_REPEATS)]
    hands = runs[0]
    rows = [
        f"| {path.name} | {i} | {(t - hands.timestamps_ns[0]) / 1e6:.0f} | "
        + " | ".join(f"{c:.2f}" if c > 0 else "-" for c in hands.confidence[f])
        + " |"
        for f, (i, t) in enumerate(zip(hands.frame_indices, hands.timestamps_ns))
    ]
    return rows, min(r.metadata["detect_ms_per_frame"] for r in runs)


def fisheye_vs_pinhole(path: Path) -> list[str]:
    """Markdown rows: frames with a hand and ms/frame for the raw fisheye and rectified pinhole views."""
    camera = data_provider.create_vrs_data_provider(str(path)).get_device_calibration().get_camera_calib("camera-rgb")
    images = [frame.image for frame in open_frames(path).read(1)]
    with MediaPipeHands() as detector:
        start = time.perf_counter()
        raw = [[h.keypoints_2d for h in detector.detect(image, 1)] for image in images]
        rows = [_view_row("raw fisheye, turned upright", raw, None, (time.perf_counter() - start) / len(images))]
        for size, focal in PINHOLES:
            linear = aria_calibration.get_linear_camera_calibration(
                size, size, focal, "camera-rgb", camera.get_transform_device_camera()
            )
            start = time.perf_counter()
            found = [detector.detect(aria_calibration.distort_by_calibration(im, linear, camera), 1) for im in images]
            seconds = (time.perf_counter() - start) / len(images)
            mapped = [[_to_fisheye(h.keypoints_2d, linear, camera) for h in hands] for hands in found]
            rows.append(_view_row(f"rectified pinhole {size}x{size}, f={focal:.0f}", mapped, raw, seconds))
    return rows


def _to_fisheye(keypoints: np.ndarray, linear, fisheye) -> np.ndarray:
    """(21, 2) pinhole pixels -> (21, 2) fisheye pixels through the two camera models."""
    return np.array([fisheye.project_no_checks(linear.unproject_no_checks(uv)) for uv in keypoints.astype(float)])


def _view_row(name: str, found: list[list[np.ndarray]], raw: list[list[np.ndarray]] | None, seconds: float) -> str:
    """`found`, `raw`: per frame, the (21, 2) fisheye keypoints of each hand."""
    frames = [i for i, hands in enumerate(found) if hands]
    pairs = [(hands[0], ref[0]) for hands, ref in zip(found, raw or []) if hands and ref]
    agreement = f"{np.mean([np.linalg.norm(a - b, axis=-1).mean() for a, b in pairs]):.1f}" if pairs else "-"
    return f"| {name} | {len(frames)} ({', '.join(map(str, frames))}) | {agreement} | {1000 * seconds:.0f} |"


def draw_figure(path: Path) -> None:
    """The stored frames with a hand, cropped to it, keypoints drawn (the image as stored: hand at the right)."""
    hands = detect_hands(path, use_cache=False, progress=False).detections
    images = {frame.index: frame.image for frame in open_frames(path).read(1)}
    crops = []
    for f in np.nonzero(hands.present()[:, 0])[0]:
        image = images[int(hands.frame_indices[f])].copy()
        points = hands.keypoints_2d[f, 0].astype(int)
        for a, b in BONES:
            cv2.line(image, tuple(points[a]), tuple(points[b]), (255, 200, 0), 3)
        for point in points:
            cv2.circle(image, tuple(point), 6, (255, 60, 60), -1)
        crops.append(image[300:1108, 1000:1408])
    FIGURE.parent.mkdir(exist_ok=True)
    small = cv2.resize(np.hstack(crops), None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(FIGURE), cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rows, timings = [], {}
    for name in RECORDINGS:
        table, timings[name] = detection_table(SHARED / "aria" / name)
        rows += table
    views = fisheye_vs_pinhole(SHARED / "aria" / RECORDINGS[0])
    draw_figure(SHARED / "aria" / RECORDINGS[0])
    report = "\n".join([
        BEGIN,
        (f"Measured by `benchmarks/detect_hands_report.py` on one core of this machine ({cpu_model()}, "
         f"{os.cpu_count()} cores, pinned to one), mediapipe 0.10.14, 1408x1408 RGB frames:"),
        "",
        "| recording | frame | t (ms) | left confidence | right confidence |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "Detection time, best of five passes: "
        + ", ".join(f"{name} {ms:.0f} ms/frame" for name, ms in timings.items()) + ".",
        "",
        ("Raw fisheye against rectified pinhole views of the same frames (aea recording; agreement: mean distance "
         "of the 21 keypoints from the raw-fisheye ones, in fisheye pixels, where both found the hand; time includes "
         "the rectification):"),
        "",
        "| view | frames with a hand | agreement (px) | ms/frame |",
        "|---|---|---|---|",
        *views,
        "",
        "![the wearer's left hand, detected in the stored (unrotated) fisheye frames 0-2](hands_aria.png)",
        END,
    ])
    text = DOC.read_text()
    DOC.write_text(text[: text.index(BEGIN)] + report + text[text.index(END) + len(END):])
    print(report)


if __name__ == "__main__":
    main()
