"""SMPL-H kinematic topology: 52 joints (22 body, then 15 per hand)."""

from __future__ import annotations

BODY_JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
BODY_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

_FINGERS = ("index", "middle", "pinky", "ring", "thumb")


def _hand(side: str, wrist: int, first: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    names: list[str] = []
    parents: list[int] = []
    for f, finger in enumerate(_FINGERS):
        for k in range(3):
            names.append(f"{side}_{finger}{k + 1}")
            parents.append(wrist if k == 0 else first + 3 * f + k - 1)
    return tuple(names), tuple(parents)


_LEFT_HAND_NAMES, _LEFT_HAND_PARENTS = _hand("left", 20, 22)
_RIGHT_HAND_NAMES, _RIGHT_HAND_PARENTS = _hand("right", 21, 37)

JOINT_NAMES: tuple[str, ...] = BODY_JOINT_NAMES + _LEFT_HAND_NAMES + _RIGHT_HAND_NAMES
PARENTS: tuple[int, ...] = BODY_PARENTS + _LEFT_HAND_PARENTS + _RIGHT_HAND_PARENTS
NUM_JOINTS = 52
NUM_BODY_JOINTS = 22
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}


def _mirror_name(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


# Index of each joint's left/right counterpart (itself for the spine).
MIRROR_INDEX: tuple[int, ...] = tuple(JOINT_INDEX[_mirror_name(n)] for n in JOINT_NAMES)

assert len(JOINT_NAMES) == NUM_JOINTS and len(PARENTS) == NUM_JOINTS
