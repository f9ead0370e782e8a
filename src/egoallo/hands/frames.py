"""Video frames with timestamps and the camera that took them: an Aria VRS or an ordinary video.

A VRS gives its RGB stream (`camera-rgb`, stream id 214-1; device timestamps, frames stored
rotated 90 degrees counter-clockwise from upright) and its factory calibration. A video (any
container OpenCV's FFmpeg reads) needs a camera JSON (`egoallo.inputs.camera_json.read_video_calibration`); frame `i`
is stamped `start_time_ns + round(i * 1e9 / fps)`. Frames are read lazily.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from egoallo.errors import InputFileError
from egoallo.cameras import CameraModel
from egoallo.inputs.calibration import RGB_CAMERA_LABEL, from_device_calibration
from egoallo.inputs.camera_json import read_video_calibration
from egoallo.thirdparty import native_logs_hidden, require

ARIA_UPRIGHT_QUARTER_TURNS = 1  # Aria stores RGB frames turned 90 degrees counter-clockwise


@dataclass(frozen=True, eq=False)
class Frame:
    """One stored frame."""

    index: int
    """Frame number in the source."""
    timestamp_ns: int
    image: np.ndarray
    """(H, W, 3) uint8 RGB, as stored (not rotated)."""


@dataclass(frozen=True, eq=False)
class FrameSource:
    """An opened VRS RGB stream or video."""

    path: Path
    kind: Literal["vrs", "video"]
    camera: CameraModel
    num_frames: int
    """Frames in the source (for a video, as its container reports it)."""
    upright_quarter_turns: int
    """Clockwise quarter turns that make a stored frame upright."""
    read: Callable[[int], Iterator[Frame]]
    """`read(every)` yields every `every`-th frame, starting with the first."""


def open_frames(path: str | Path, intrinsics: str | Path | None = None) -> FrameSource:
    """Open a `.vrs` recording, or another file as a video described by the `intrinsics` JSON."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found (expected an Aria .vrs recording or a video)")
    if path.suffix.lower() == ".vrs":
        if intrinsics is not None:
            raise InputFileError(path, "--intrinsics is for videos; a VRS recording carries its own calibration")
        return _open_vrs(path)
    if intrinsics is None:
        raise InputFileError(
            path, "a video needs --intrinsics CAMERA.json (model, width, height, intrinsics, T_cpf_camera; docs/hands.md)"
        )
    return _open_video(path, Path(intrinsics))


def _open_vrs(path: Path) -> FrameSource:
    data_provider = require("projectaria_tools.core.data_provider", f"{path}: reading an Aria .vrs recording")
    with native_logs_hidden():
        try:
            provider = data_provider.create_vrs_data_provider(str(path))
        except RuntimeError as error:
            raise InputFileError(path, f"projectaria-tools cannot read this VRS file ({error})") from None
    if provider is None:
        raise InputFileError(path, "projectaria-tools cannot open this file as a VRS recording (corrupt or not VRS)")
    stream = provider.get_stream_id_from_label(RGB_CAMERA_LABEL)
    if stream is None or stream not in provider.get_all_streams():
        labels = [provider.get_label_from_stream_id(s) for s in provider.get_all_streams()]
        raise InputFileError(path, f"no RGB camera stream ({RGB_CAMERA_LABEL!r}); the recording has {labels}")
    num_frames = provider.get_num_data(stream)
    if num_frames == 0:
        raise InputFileError(path, f"the {RGB_CAMERA_LABEL!r} stream holds no frame (a truncated copy?)")
    device = provider.get_device_calibration()
    if device is None:
        raise InputFileError(path, "the VRS recording holds no device calibration")
    camera = from_device_calibration(device, str(path), "VRS factory calibration").rgb_camera()  # its errors name the file
    read = functools.partial(_read_vrs, path, provider, stream, num_frames)
    return FrameSource(path, "vrs", camera, num_frames, ARIA_UPRIGHT_QUARTER_TURNS, read)


def _read_vrs(path: Path, provider, stream, num_frames: int, every: int) -> Iterator[Frame]:
    for index in range(0, num_frames, every):
        image, record = provider.get_image_data_by_index(stream, index)
        if not image.is_valid():
            raise InputFileError(path, f"RGB frame {index} cannot be decoded")
        yield Frame(index, int(record.capture_timestamp_ns), image.to_numpy_array())


def _open_video(path: Path, intrinsics: Path) -> FrameSource:
    cv2 = require("cv2", f"{path}: reading a video")

    spec = read_video_calibration(intrinsics)
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    fps, count = capture.get(cv2.CAP_PROP_FPS), capture.get(cv2.CAP_PROP_FRAME_COUNT)
    capture.release()
    if not ok:
        raise InputFileError(path, "cannot read as a video (OpenCV/FFmpeg decodes no frame); expected e.g. an .mp4")
    height, width = first.shape[:2]
    if (width, height) != spec.camera.image_size:
        w, h = spec.camera.image_size
        raise InputFileError(path, f"frames are {width}x{height} pixels, but {intrinsics} describes {w}x{h}")
    fps = spec.fps or fps
    if not fps > 0:
        raise InputFileError(path, f"the video reports no frame rate; give \"fps\" in {intrinsics}")
    read = functools.partial(_read_video, path, spec.start_time_ns, fps)
    return FrameSource(path, "video", spec.camera, max(int(count), 1), spec.upright_quarter_turns, read)


def _read_video(path: Path, start_time_ns: int, fps: float, every: int) -> Iterator[Frame]:
    cv2 = require("cv2", f"{path}: reading a video")

    capture = cv2.VideoCapture(str(path))
    try:
        index = 0
        while capture.grab():
            if index % every == 0:
                ok, bgr = capture.retrieve()
                if not ok:
                    raise InputFileError(path, f"video frame {index} cannot be decoded")
                timestamp = start_time_ns + round(index * 1e9 / fps)
                yield Frame(index, timestamp, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
