"""MediaPipe Hands on one frame, with the models bundled in the `mediapipe` wheel (no download).

The frame is turned upright for detection; keypoints come back in the stored image's pixels
and camera axes. MediaPipe labels handedness as if the image were mirrored (a selfie camera);
an egocentric frame is not, so its "Right" is the wearer's left hand and the labels are swapped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Self

import numpy as np

from egoallo.thirdparty import native_logs_hidden, require

_GRAPH = "mediapipe/modules/hand_landmark/hand_landmark_tracking_cpu.binarypb"
_PALM_KEYPOINTS = (0, 5, 9, 13, 17)  # wrist and finger MCPs: what the palm detector boxes


@dataclass(frozen=True, eq=False)
class HandCandidate:
    """One hand found in one frame, before the left/right assignment over time."""

    p_right: float
    """Probability that it is the wearer's right hand (MediaPipe's handedness, un-mirrored)."""
    score: float
    """Palm detection score."""
    keypoints_2d: np.ndarray
    """(21, 2) pixels of the stored image."""
    keypoints_3d: np.ndarray
    """(21, 3) metres in the stored image's camera axes, relative to the wrist."""


class MediaPipeHands:
    """MediaPipe's hand landmark graph in static-image mode: palm detection and landmarks on every frame."""

    def __init__(self, min_confidence: float = 0.5) -> None:
        solution_base = require("mediapipe.python.solution_base", "hand detection (Python 3.8-3.12)")
        with native_logs_hidden():
            self._graph = solution_base.SolutionBase(
                binary_graph_path=_GRAPH,
                side_inputs={"model_complexity": 1, "num_hands": 2, "use_prev_landmarks": False},
                calculator_params={
                    "palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": min_confidence,
                    "handlandmarkcpu__ThresholdingCalculator.threshold": min_confidence,
                },
                outputs=["multi_hand_landmarks", "multi_hand_world_landmarks", "multi_handedness", "palm_detections"],
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self._graph.close()

    def detect(self, image: np.ndarray, quarter_turns: int) -> list[HandCandidate]:
        """Hands in a stored (H, W, 3) uint8 RGB frame that `quarter_turns` clockwise turns make upright."""
        upright = np.ascontiguousarray(np.rot90(image, k=-quarter_turns))
        with warnings.catch_warnings(), native_logs_hidden():
            warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
            result = self._graph.process({"image": upright})
        if not result.multi_hand_landmarks:
            return []
        height, width = upright.shape[:2]
        stored_size = (image.shape[1], image.shape[0])
        palms = [_box_centre_and_score(d) for d in result.palm_detections or []]
        candidates = []
        for landmarks, world, handedness in zip(
            result.multi_hand_landmarks, result.multi_hand_world_landmarks, result.multi_handedness
        ):
            normalized = np.array([[p.x, p.y] for p in landmarks.landmark])
            xyz = upright_to_stored_axes(np.array([[p.x, p.y, p.z] for p in world.landmark]), quarter_turns)
            label = handedness.classification[0]
            candidates.append(
                HandCandidate(
                    p_right=label.score if label.label == "Left" else 1.0 - label.score,
                    score=_nearest_palm_score(normalized[list(_PALM_KEYPOINTS)].mean(axis=0), palms),
                    keypoints_2d=upright_to_stored_pixels(normalized * (width, height) - 0.5, quarter_turns, stored_size),
                    keypoints_3d=xyz - xyz[0],
                )
            )
        return candidates


def upright_to_stored_pixels(uv: np.ndarray, quarter_turns: int, stored_size: tuple[int, int]) -> np.ndarray:
    """(N, 2) pixels of the upright image -> pixels of the stored (width, height) image."""
    width, height = stored_size
    for turn in range(quarter_turns, 0, -1):
        turned_width = height if turn % 2 else width
        uv = np.stack([uv[:, 1], turned_width - 1 - uv[:, 0]], axis=-1)
    return uv


def upright_to_stored_axes(xyz: np.ndarray, quarter_turns: int) -> np.ndarray:
    """(N, 3) vectors in the upright camera's axes -> the stored camera's axes (x right, y down, z forward)."""
    for _ in range(quarter_turns):
        xyz = np.stack([xyz[:, 1], -xyz[:, 0], xyz[:, 2]], axis=-1)
    return xyz


def _box_centre_and_score(detection) -> tuple[np.ndarray, float]:
    box = detection.location_data.relative_bounding_box
    return np.array([box.xmin + box.width / 2, box.ymin + box.height / 2]), float(detection.score[0])


def _nearest_palm_score(palm_centre: np.ndarray, palms: list[tuple[np.ndarray, float]]) -> float:
    """Score of the palm detection (normalized box centre, score) closest to the hand's palm keypoints."""
    return min(palms, key=lambda palm: float(np.linalg.norm(palm[0] - palm_centre)))[1]
