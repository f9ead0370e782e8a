"""Hand detection over a whole VRS or video: frames -> MediaPipe -> sides over time -> `HandDetections`."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from egoallo.errors import InputFileError, UserError
from egoallo.hands import cache
from egoallo.hands.detections import FORMAT_VERSION, HandDetections, empty_arrays
from egoallo.hands.frames import FrameSource, open_frames
from egoallo.hands.mediapipe_hands import MediaPipeHands
from egoallo.hands.sides import Assigned, SideTracker
from egoallo.progress import progress_bar


@dataclass(frozen=True)
class DetectSettings:
    """What changes the detections (and so the cache key)."""

    every: int = 1
    """Detect on every N-th frame."""
    min_confidence: float = 0.5
    """MediaPipe's palm detection and hand presence thresholds."""


@dataclass(frozen=True, eq=False)
class DetectionRun:
    detections: HandDetections
    cache_file: Path | None
    cache_hit: bool


def detect_hands(
    path: str | Path,
    intrinsics: str | Path | None = None,
    settings: DetectSettings = DetectSettings(),
    *,
    use_cache: bool = True,
    progress: bool = True,
) -> DetectionRun:
    """Detect both hands in a `.vrs` recording or a video (with its camera JSON), reusing cached detections."""
    if settings.every < 1 or not 0.0 < settings.min_confidence <= 1.0:
        raise UserError(f"--every must be >= 1 and --min-confidence in (0, 1]; got {settings}.")
    source = open_frames(path, intrinsics)
    key_settings = {**asdict(settings), "format": FORMAT_VERSION, "mediapipe": _mediapipe_version()}
    key = cache.cache_key(source.path, Path(intrinsics) if intrinsics else None, key_settings)
    cached = cache.load_cached(source.path, key) if use_cache else None
    if cached is not None:
        return DetectionRun(cached[0], cached[1], cache_hit=True)
    detections = _detect(source, settings, progress)
    return DetectionRun(detections, cache.store(detections, source.path, key) if use_cache else None, cache_hit=False)


def summarize(detections: HandDetections) -> str:
    """Frames processed, frames with each hand, mean confidence where present, detection time."""
    present = detections.present()
    parts = [f"{detections.num_frames} frames processed", f"no hand in {int((~present.any(axis=1)).sum())}"]
    for side, name in enumerate(("left", "right")):
        count = int(present[:, side].sum())
        mean = f", mean confidence {detections.confidence[present[:, side], side].mean():.2f}" if count else ""
        parts.append(f"{name} hand in {count}{mean}")
    ms = detections.metadata.get("detect_ms_per_frame")
    return "; ".join(parts) + (f"; {ms:.0f} ms/frame detection" if ms is not None else "")


def _detect(source: FrameSource, settings: DetectSettings, progress: bool) -> HandDetections:
    width, height = source.camera.image_size
    tracker = SideTracker(image_diagonal=math.hypot(width, height))
    indices, timestamps, hands = [], [], []
    seconds = 0.0
    with MediaPipeHands(settings.min_confidence) as detector:
        frames = source.read(settings.every)
        total = math.ceil(source.num_frames / settings.every)
        for frame in progress_bar(frames, enabled=progress, total=total, unit="frame", desc=source.path.name):
            if frame.image.shape[:2] != (height, width):
                raise InputFileError(
                    source.path, f"frame {frame.index} is {frame.image.shape[1]}x{frame.image.shape[0]} pixels, "
                    f"the camera calibration {width}x{height}"
                )
            start = time.perf_counter()
            candidates = detector.detect(frame.image, source.upright_quarter_turns)
            seconds += time.perf_counter() - start
            indices.append(frame.index)
            timestamps.append(frame.timestamp_ns)
            hands.append(tracker.assign(candidates, frame.timestamp_ns))
    arrays = empty_arrays(len(hands))
    for f, sides in enumerate(hands):
        for side, assigned in enumerate(sides):
            if assigned is not None:
                _fill(arrays, f, side, assigned)
    return HandDetections(
        timestamps_ns=np.asarray(timestamps, dtype=np.int64),
        frame_indices=np.asarray(indices, dtype=np.int64),
        **arrays,
        camera=source.camera,
        metadata=_metadata(source, settings, 1000.0 * seconds / max(len(hands), 1)),
    )


def _fill(arrays: dict[str, np.ndarray], frame: int, side: int, assigned: Assigned) -> None:
    arrays["keypoints_2d"][frame, side] = assigned.candidate.keypoints_2d
    arrays["keypoints_3d_camera"][frame, side] = assigned.candidate.keypoints_3d
    arrays["confidence"][frame, side] = assigned.confidence


def _metadata(source: FrameSource, settings: DetectSettings, ms_per_frame: float) -> dict:
    return {
        "source": str(source.path.resolve()),
        "source_kind": source.kind,
        "source_frames": source.num_frames,
        "detector": "MediaPipe Hands (bundled models, static-image mode, model_complexity 1, at most 2 hands)",
        "detector_version": _mediapipe_version(),
        "settings": asdict(settings),
        "upright_quarter_turns": source.upright_quarter_turns,
        "image": "as stored (Aria: raw fisheye), turned upright for detection; keypoints in stored-image pixels",
        "handedness": "MediaPipe labels swapped (egocentric frames are not mirrored), then assigned over time",
        "keypoints_3d": "MediaPipe world landmarks (metric, hand-relative) minus the wrist; wrist position not measured",
        "detect_ms_per_frame": ms_per_frame,
        "egoallo_version": importlib_metadata.version("egoallo"),
    }


def _mediapipe_version() -> str:
    try:
        return importlib_metadata.version("mediapipe")
    except importlib_metadata.PackageNotFoundError:
        return "not installed"
