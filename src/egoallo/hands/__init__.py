"""Hands from egocentric video: MediaPipe detection on Aria VRS or video, HaMeR outputs, `hands.npz`."""

from egoallo.hands.detect import DetectionRun, DetectSettings, detect_hands, summarize
from egoallo.hands.detections import SIDES, HandDetections
from egoallo.hands.frames import Frame, FrameSource, open_frames
from egoallo.hands.hamer import read_hamer

__all__ = [
    "SIDES",
    "DetectSettings",
    "DetectionRun",
    "Frame",
    "FrameSource",
    "HandDetections",
    "detect_hands",
    "open_frames",
    "read_hamer",
    "summarize",
]
