"""BVH parsing, forward kinematics and source-skeleton identification."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from egoallo.body.skeleton import JOINT_NAMES
from egoallo.data.bvh import Y_UP_TO_Z_UP, Bvh, BvhError, BvhPose, parse_bvh, read_bvh
from egoallo.data.skeletons import (
    BANDAI,
    CMU,
    DAZ,
    KNOWN_SKELETONS,
    REACTIDLE,
    SourceSkeleton,
    UnknownSkeletonError,
    identify_skeleton,
)

# Root A with 6 channels, B and C with 3, an End Site on C. Frame 0 is the rest
# pose; frame 1 moves A to (1, 2, 3), turns it 90 deg about Z and B 90 deg about X.
CHAIN = """\
HIERARCHY
ROOT A
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT B
  {
    OFFSET 10 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT C
    {
      OFFSET 0 5 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      End Site
      {
        OFFSET 0 0 2
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 0 0 0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 0 90 0 0 0 0
"""
CHAIN_FRAME_LINE = 24  # 1-based line number of the first frame line.

# Expected Y-up positions in file units: joints A, B, C, then the end site.
CHAIN_POSITIONS = np.array([[[0, 0, 0], [10, 0, 0], [10, 5, 0]], [[1, 2, 3], [1, 12, 3], [1, 12, 8]]], float)
CHAIN_END_SITE = np.array([[[10, 5, 2]], [[3, 12, 8]]], float)


def _raw_fk(bvh: Bvh, **kwargs) -> BvhPose:
    return bvh.forward_kinematics(unit_scale=1.0, z_up=False, **kwargs)


def _single_joint(channels: str, values: str) -> Bvh:
    """A root with rotation `channels` and an End Site at (1, 0, 0)."""
    names = channels.split()
    return parse_bvh(
        f"HIERARCHY\nROOT R\n{{\nOFFSET 0 0 0\nCHANNELS {len(names)} {channels}\n"
        f"End Site\n{{\nOFFSET 1 0 0\n}}\n}}\nMOTION\nFrames: 1\nFrame Time: 0.01\n{values}\n"
    )


# --- Parsing and FK on hand-written files -------------------------------------------


def test_parse_fields() -> None:
    bvh = parse_bvh(CHAIN)
    assert bvh.joint_names == ("A", "B", "C")
    np.testing.assert_array_equal(bvh.parents, [-1, 0, 1])
    np.testing.assert_array_equal(bvh.offsets, [[0, 0, 0], [10, 0, 0], [0, 5, 0]])
    assert bvh.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
    assert bvh.channels[1] == ("Zrotation", "Xrotation", "Yrotation")
    np.testing.assert_array_equal(bvh.end_sites.parents, [2])
    np.testing.assert_array_equal(bvh.end_sites.offsets, [[0, 0, 2]])
    assert bvh.motion.shape == (2, 12) and bvh.motion.dtype == np.float64
    assert bvh.num_frames == 2
    assert bvh.frame_time == pytest.approx(1 / 30, abs=1e-6)
    assert bvh.fps == pytest.approx(30.0, abs=1e-4)
    assert bvh.source == "<string>"
    assert not bvh.motion.flags.writeable


def test_chain_forward_kinematics_exact() -> None:
    pose = _raw_fk(parse_bvh(CHAIN))
    np.testing.assert_allclose(pose.positions, CHAIN_POSITIONS, atol=1e-12)
    np.testing.assert_allclose(pose.end_site_positions, CHAIN_END_SITE, atol=1e-12)
    rz90 = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], float)
    rx90 = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float)
    np.testing.assert_allclose(pose.rotations[0], np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(pose.rotations[1, 0], rz90, atol=1e-12)
    np.testing.assert_allclose(pose.rotations[1, 1], rz90 @ rx90, atol=1e-12)
    np.testing.assert_allclose(pose.rotations[1, 2], rz90 @ rx90, atol=1e-12)


def test_centimetres_to_metres() -> None:
    pose = parse_bvh(CHAIN).forward_kinematics(z_up=False)  # default unit_scale=0.01
    np.testing.assert_allclose(pose.positions, CHAIN_POSITIONS / 100, atol=1e-12)
    np.testing.assert_allclose(pose.end_site_positions, CHAIN_END_SITE / 100, atol=1e-12)


def test_z_up_conversion() -> None:
    bvh = parse_bvh(CHAIN)
    y_up, z_up = _raw_fk(bvh), bvh.forward_kinematics(unit_scale=1.0)
    # (x, y, z) -> (x, -z, y): C at (1, 12, 8) in frame 1 goes to (1, -8, 12).
    np.testing.assert_allclose(z_up.positions[1, 2], [1, -8, 12], atol=1e-12)
    np.testing.assert_allclose(z_up.positions, y_up.positions[..., [0, 2, 1]] * [1, -1, 1], atol=1e-12)
    np.testing.assert_allclose(z_up.end_site_positions, y_up.end_site_positions @ Y_UP_TO_Z_UP.T, atol=1e-12)
    np.testing.assert_allclose(z_up.rotations, Y_UP_TO_Z_UP @ y_up.rotations, atol=1e-12)
    np.testing.assert_allclose(Y_UP_TO_Z_UP @ [0, 1, 0], [0, 0, 1])
    assert np.linalg.det(Y_UP_TO_Z_UP) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("channels", "values", "expected"),
    [
        # Same per-axis angles (X=90, Y=0, Z=90), different order, different result.
        ("Zrotation Xrotation Yrotation", "90 90 0", [0, 1, 0]),  # Rz @ Rx @ Ry
        ("Xrotation Yrotation Zrotation", "90 0 90", [0, 0, 1]),  # Rx @ Ry @ Rz
        ("Yrotation", "90", [0, 0, -1]),
    ],
)
def test_channel_order(channels: str, values: str, expected: list[float]) -> None:
    pose = _raw_fk(_single_joint(channels, values))
    np.testing.assert_allclose(pose.end_site_positions[0, 0], expected, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations("XYZ"),
    angles=st.lists(st.floats(-360, 360, allow_nan=False), min_size=3, max_size=3),
)
def test_euler_matches_scipy_intrinsic(order: list[str], angles: list[float]) -> None:
    bvh = _single_joint(" ".join(f"{axis}rotation" for axis in order), " ".join(map(repr, angles)))
    expected = Rotation.from_euler("".join(order), angles, degrees=True).as_matrix()
    np.testing.assert_allclose(_raw_fk(bvh).rotations[0, 0], expected, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-180, 180, allow_nan=False), min_size=9, max_size=9))
def test_bone_lengths_preserved(angles: list[float]) -> None:
    values = " ".join(map(repr, [0.0, 0.0, 0.0, *angles]))
    pose = _raw_fk(parse_bvh(CHAIN.replace("1 2 3 90 0 0 0 90 0 0 0 0", values)))
    np.testing.assert_allclose(np.linalg.norm(pose.positions[1, 1] - pose.positions[1, 0]), 10.0)
    np.testing.assert_allclose(np.linalg.norm(pose.positions[1, 2] - pose.positions[1, 1]), 5.0)
    np.testing.assert_allclose(np.linalg.norm(pose.end_site_positions[1, 0] - pose.positions[1, 2]), 2.0)
    rotations = pose.rotations[1]
    np.testing.assert_allclose(rotations @ np.swapaxes(rotations, -1, -2), np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-12)


def _six_channel_child(child_values: str) -> Bvh:
    """Bandai-style: every joint has 6 channels; the child's OFFSET is (0, 10, 0)."""
    six = "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
    return parse_bvh(
        f"HIERARCHY\nROOT R\n{{\nOFFSET 0 0 0\n{six}\nJOINT S\n{{\nOFFSET 0 10 0\n{six}\n"
        f"End Site\n{{\nOFFSET 0 3 0\n}}\n}}\n}}\nMOTION\nFrames: 1\nFrame Time: 0.0333333\n"
        f"0 90 0 0 0 0 {child_values} 0 0 0\n"
    )


def test_six_channel_child_position_modes() -> None:
    # Position channels repeat the OFFSET (Bandai layout): "auto" reads them as absolute.
    bandai_like = _six_channel_child("0 10 0")
    assert bandai_like.uses_absolute_positions()
    np.testing.assert_allclose(_raw_fk(bandai_like).positions[0, 1], [0, 100, 0])
    np.testing.assert_allclose(_raw_fk(bandai_like, position_mode="absolute").positions[0, 1], [0, 100, 0])
    np.testing.assert_allclose(_raw_fk(bandai_like, position_mode="add_offset").positions[0, 1], [0, 110, 0])
    np.testing.assert_allclose(_raw_fk(bandai_like).end_site_positions[0, 0], [0, 103, 0])

    # Position channels hold deltas: "auto" adds them to the OFFSET.
    delta = _six_channel_child("0 0 1")
    assert not delta.uses_absolute_positions()
    np.testing.assert_allclose(_raw_fk(delta).positions[0, 1], [0, 100, 1])
    np.testing.assert_allclose(_raw_fk(delta, position_mode="absolute").positions[0, 1], [0, 90, 1])


def test_unknown_position_mode() -> None:
    with pytest.raises(ValueError, match="position_mode"):
        parse_bvh(CHAIN).forward_kinematics(position_mode="relative")  # type: ignore[arg-type]


def test_whitespace_crlf_and_inline_braces() -> None:
    messy = (
        CHAIN.replace("  ", "\t")
        .replace("ROOT A\n{", "ROOT A {")
        .replace("End Site\n", "End Site")
        .replace("Frames: 2", "Frames:\t2")
        .replace("MOTION\n", "\nMOTION\n\n")
        .replace("\n", "\r\n")
    )
    expected = _raw_fk(parse_bvh(CHAIN))
    pose = _raw_fk(parse_bvh(messy))
    np.testing.assert_allclose(pose.positions, expected.positions)
    np.testing.assert_allclose(pose.end_site_positions, expected.end_site_positions)


def test_zero_channel_joint_and_zero_frames() -> None:
    one_frame = CHAIN.split("Frames:")[0] + "Frames: 1\nFrame Time: 0.01\n1 2 3 90 0 0 0 0 0\n"
    bvh = parse_bvh(one_frame.replace("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 0", 1))
    assert bvh.channels[1] == ()
    np.testing.assert_allclose(_raw_fk(bvh).positions[0, 2], [-4, 12, 3], atol=1e-12)
    empty = parse_bvh(CHAIN.split("Frames:")[0] + "Frames: 0\nFrame Time: 0.01\n")
    pose = empty.forward_kinematics()
    assert pose.positions.shape == (0, 3, 3) and pose.end_site_positions.shape == (0, 1, 3)


def test_fk_large_file() -> None:
    """A 5,000-frame, 100-joint chain (CMU-sized) parses and runs FK; its speed: benchmarks/benchmark_bvh.py."""
    num_joints, num_frames = 100, 5000
    lines = ["HIERARCHY", "ROOT J0", "{", "OFFSET 0 0 0", "CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation"]
    for j in range(1, num_joints):
        lines += [f"JOINT J{j}", "{", "OFFSET 0 1 0", "CHANNELS 3 Zrotation Yrotation Xrotation"]
    lines += ["}"] * num_joints
    values = np.random.default_rng(0).integers(-90, 90, (num_frames, 3 + 3 * num_joints))
    lines += ["MOTION", f"Frames: {num_frames}", "Frame Time: 0.016667"]
    lines += [" ".join(map(str, row)) for row in values.tolist()]
    pose = parse_bvh("\n".join(lines)).forward_kinematics()
    assert pose.positions.shape == (num_frames, num_joints, 3)
    # Unit bone offsets: every joint stays within its chain length of the root (x 0.01: centimetres to metres).
    reach = np.linalg.norm(pose.positions - pose.positions[:, :1], axis=-1)
    assert np.isfinite(reach).all() and (reach <= 0.01 * np.arange(num_joints) + 1e-9).all()


# --- Malformed files ---------------------------------------------------------------------


def _replace_line(text: str, line: int, new: str) -> str:
    lines = text.split("\n")
    lines[line - 1] = new
    return "\n".join(lines)


MALFORMED = {
    "missing HIERARCHY": (CHAIN.replace("HIERARCHY\n", ""), ["missing HIERARCHY"]),
    "missing MOTION": (CHAIN.replace("MOTION\n", ""), ["missing MOTION"]),
    "missing Frames": (CHAIN.replace("Frames: 2\n", ""), ["missing Frames:", f":{CHAIN_FRAME_LINE - 1}:"]),
    "missing Frame Time": (CHAIN.replace("Frame Time: 0.0333333\n", ""), ["missing Frame Time:"]),
    "missing both": (CHAIN.split("Frames:")[0], ["missing Frames:"]),
    "zero frame time": (CHAIN.replace("Frame Time: 0.0333333", "Frame Time: 0"), ["Frame Time must be positive", ":23:"]),
    "negative frame time": (CHAIN.replace("0.0333333", "-0.01"), ["Frame Time must be positive"]),
    "tiny frame time": (CHAIN.replace("0.0333333", "1e-320"), ["Frame Time must be positive (1e-05 to 60 s), got 1e-320"]),
    "huge value": (
        _replace_line(CHAIN, CHAIN_FRAME_LINE, "1e308 0 0 0 0 0 0 0 0 0 0 0"),
        [f":{CHAIN_FRAME_LINE}:", "out-of-range value 1e+308", "frame 0", "channel 0", "within +-1e+09"],
    ),
    "huge offset": (CHAIN.replace("OFFSET 10 0 0", "OFFSET 10 1e308 0"), ["OFFSET value '1e308'", "within +-1e+09", ":8:"]),
    "nested too deeply": (
        "HIERARCHY\nROOT A\n{\nOFFSET 0 0 0\nCHANNELS 1 Xrotation\n" + "JOINT B\n{\nOFFSET 0 1 0\n" * 300
        + "}\n" * 301 + "MOTION\nFrames: 0\nFrame Time: 0.1\n",
        ["JOINT B is nested 257 joints deep; expected at most 256"],
    ),
    "non-numeric frame time": (CHAIN.replace("0.0333333", "fast"), ["non-numeric Frame Time", "'fast'"]),
    "non-integer Frames": (CHAIN.replace("Frames: 2", "Frames: two"), ["Frames: must be a non-negative integer"]),
    "short frame line": (
        _replace_line(CHAIN, CHAIN_FRAME_LINE + 1, "1 2 3 90 0 0 0 90 0 0 0"),
        [f":{CHAIN_FRAME_LINE + 1}:", "frame 1", "has 11 values, expected 12"],
    ),
    "long frame line": (
        _replace_line(CHAIN, CHAIN_FRAME_LINE, "0 0 0 0 0 0 0 0 0 0 0 0 0"),
        [f":{CHAIN_FRAME_LINE}:", "frame 0", "has 13 values, expected 12"],
    ),
    "truncated": (CHAIN.replace("Frames: 2", "Frames: 5"), ["truncated", "Frames: says 5", "only 2", "3 missing"]),
    "extra frame lines": (CHAIN.replace("Frames: 2", "Frames: 1"), ["2 frame lines but Frames: says 1", f":{CHAIN_FRAME_LINE + 1}:"]),
    "non-numeric value": (
        _replace_line(CHAIN, CHAIN_FRAME_LINE + 1, "1 2 3 90 0 0 0 abc 0 0 0 0"),
        [f":{CHAIN_FRAME_LINE + 1}:", "non-numeric value 'abc'", "frame 1", "channel 7"],
    ),
    "nan value": (
        _replace_line(CHAIN, CHAIN_FRAME_LINE, "0 0 0 0 nan 0 0 0 0 0 0 0"),
        [f":{CHAIN_FRAME_LINE}:", "non-finite value nan", "frame 0", "channel 4"],
    ),
    "inf value": (
        _replace_line(CHAIN, CHAIN_FRAME_LINE + 1, "1 2 3 90 0 0 0 90 0 0 0 -inf"),
        [f":{CHAIN_FRAME_LINE + 1}:", "non-finite value -inf", "frame 1"],
    ),
    "unclosed brace": (
        CHAIN.replace("  }\n}\nMOTION", "  }\nMOTION"),
        ["unbalanced braces", "ROOT A (line 3) is never closed", ":20:"],
    ),
    "extra closing brace": (CHAIN.replace("}\nMOTION", "}\n}\nMOTION"), ["unbalanced braces: unexpected '}'", ":21:"]),
    "missing opening brace": (CHAIN.replace("JOINT B\n  {", "JOINT B"), ["expected '{' after JOINT B", ":7:"]),
    "unknown channel": (CHAIN.replace("Zrotation Xrotation Yrotation", "Zrotation Wrotation Yrotation", 1), ["unknown channel name 'Wrotation'", "joint A", ":5:"]),
    "channel count too high": (CHAIN.replace("CHANNELS 3", "CHANNELS 4", 1), ["unknown channel name 'JOINT'", "CHANNELS 4"]),
    "duplicate channel": (CHAIN.replace("Zrotation Xrotation Yrotation", "Zrotation Zrotation Yrotation", 1), ["duplicate channel Zrotation"]),
    "non-numeric offset": (CHAIN.replace("OFFSET 10 0 0", "OFFSET 10 x 0"), ["non-numeric OFFSET value: 'x'", ":8:"]),
    "missing offset": (CHAIN.replace("    OFFSET 10 0 0\n", ""), ["joint B has no OFFSET"]),
    "empty hierarchy": ("HIERARCHY\nMOTION\nFrames: 0\nFrame Time: 0.1\n", ["empty hierarchy"]),
    "no channels": (
        "HIERARCHY\nROOT A\n{\nOFFSET 0 0 0\n}\nMOTION\nFrames: 0\nFrame Time: 0.1\n",
        ["declares no channels"],
    ),
    "stray token": (CHAIN.replace("JOINT B", "BONE B"), ["unexpected token 'BONE' in joint A", ":6:"]),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_raises(case: str) -> None:
    text, fragments = MALFORMED[case]
    with pytest.raises(BvhError) as info:
        parse_bvh(text, source="bad.bvh")
    message = str(info.value)
    assert message.startswith("bad.bvh"), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_read_bvh_error_names_path(tmp_path: Path) -> None:
    path = tmp_path / "clip.bvh"
    path.write_text(CHAIN.replace("Frames: 2", "Frames: 3"))
    with pytest.raises(BvhError, match="truncated") as info:
        read_bvh(path)
    assert str(path) in str(info.value)
    path.write_text(CHAIN)
    assert read_bvh(path).source == str(path)


# --- Source skeletons ---------------------------------------------------------------------


def test_unknown_skeleton() -> None:
    with pytest.raises(UnknownSkeletonError) as info:
        identify_skeleton(parse_bvh(CHAIN, source="mystery.bvh"))
    message = str(info.value)
    assert "mystery.bvh" in message and "A, B, C" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("skeleton", KNOWN_SKELETONS, ids=lambda s: s.name)
def test_skeleton_maps_are_consistent(skeleton: SourceSkeleton) -> None:
    assert list(skeleton.joint_map) == [n for n in JOINT_NAMES if n in skeleton.joint_map]
    assert len(set(skeleton.joint_map.values())) == len(skeleton.joint_map)
    left, right = SIDE_MARKS[skeleton.name]
    for smpl, source in skeleton.joint_map.items():
        if smpl.startswith("left_"):
            assert left in source and skeleton.joint_map["right_" + smpl[5:]] == source.replace(left, right, 1)
    assert set(skeleton.orientation_joints) <= set(skeleton.joint_map)


SIDE_MARKS = {"bandai": ("_L", "_R"), "cmu": ("_L", "_R"), "daz": ("l", "r"), "reactidle": (".L", ".R")}
"""How each rig marks its left and right joints (the first occurrence)."""


def test_mapping_choices() -> None:
    assert BANDAI.joint_map["left_hip"] == "UpperLeg_L" and BANDAI.joint_map["spine3"] == "Chest"
    assert "spine2" not in BANDAI.joint_map and "spine3" not in CMU.joint_map
    assert CMU.joint_map["left_index1"] == "CC_Base_L_Index1" and CMU.joint_map["right_middle3"] == "CC_Base_R_Mid3"
    assert sum(n.startswith(("left_", "right_")) and n[-1].isdigit() for n in CMU.joint_map) == 30


# --- Real files from ../shared/datasets ------------------------------------------------

HEAD_JOINT_TO_CROWN = 0.15
"""Metres from the skull-base head joint to the top of the head (no file has a usable head-top site)."""

REAL_SAMPLES = {
    "dataset-1_bye_feminine_001": BANDAI,
    "dataset-1_walk_normal_001": BANDAI,
    "dataset-2_run_feminine_021": BANDAI,
    "dataset-2_walk_active_024": BANDAI,
    "005_19": CMU,
    "005_15": CMU,
    "002_01": CMU,
    "11_01": DAZ,
    "13_41": DAZ,
    "003_genuine": REACTIDLE,
}
SAMPLE_FPS = {"bandai": 30.0, "cmu": 60.0, "daz": 120.0, "reactidle": 24.0}


@functools.cache
def _load(path: Path) -> tuple[Bvh, BvhPose, SourceSkeleton]:
    bvh = read_bvh(path)
    skeleton = identify_skeleton(bvh)
    return bvh, bvh.forward_kinematics(unit_scale=skeleton.unit_scale), skeleton


def _joint(bvh: Bvh, pose: BvhPose, skeleton: SourceSkeleton, smpl_name: str) -> np.ndarray:
    """Positions of the source joint (or end site) mapped to `smpl_name`. (F, 3)"""
    return pose.points(bvh, [skeleton.joint_map[smpl_name]])[0][:, 0]


@pytest.fixture(params=list(REAL_SAMPLES))
def real(request: pytest.FixtureRequest, bvh_samples: dict[str, Path]) -> tuple[str, Bvh, BvhPose, SourceSkeleton]:
    bvh, pose, skeleton = _load(bvh_samples[request.param])
    return request.param, bvh, pose, skeleton


def test_real_identify_and_frame_time(real) -> None:
    name, bvh, pose, skeleton = real
    assert skeleton is REAL_SAMPLES[name]
    assert bvh.frame_time == pytest.approx(1 / SAMPLE_FPS[skeleton.name], rel=1e-4)
    assert bvh.uses_absolute_positions() == (skeleton in (BANDAI, REACTIDLE))
    assert np.isfinite(pose.positions).all() and pose.positions.shape[1] == len(bvh.joint_names)


def test_real_stature_and_floor(real) -> None:
    """Feet reach the file's ground plane (z = 0; ReActIdle's root sits at z = 0); head height gives a human stature."""
    _, bvh, pose, skeleton = real
    feet = np.stack(
        [_joint(bvh, pose, skeleton, n)[:, 2] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")], -1
    )[skeleton.lead_in_frames :]
    lowest = feet.min(axis=-1)
    if skeleton is not REACTIDLE:
        assert abs(lowest.min()) < 0.10
    standing = lowest <= lowest.min() + 0.05  # Frames with a foot on the floor.
    head = _joint(bvh, pose, skeleton, "head")[skeleton.lead_in_frames :, 2]
    stature = head[standing].max() - lowest.min() + HEAD_JOINT_TO_CROWN
    assert 1.35 < stature < 2.0  # ReActIdle performer 003 is short: 1.45 m


def test_real_left_is_performers_left(real) -> None:
    """Facing from the feet (toes ahead of ankles); left = up x forward; `left_*` joints lie there."""
    _, bvh, pose, skeleton = real
    j = functools.partial(_joint, bvh, pose, skeleton)
    forward = (j("left_foot") - j("left_ankle") + j("right_foot") - j("right_ankle"))[:, :2]
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    left = np.stack([-forward[:, 1], forward[:, 0]], axis=-1)
    for side_pair in (("left_hip", "right_hip"), ("left_shoulder", "right_shoulder")):
        projection = np.sum((j(side_pair[0]) - j(side_pair[1]))[:, :2] * left, axis=-1)
        assert np.median(projection) > 0.05, side_pair
        assert np.mean(projection > 0) > 0.8, side_pair


def test_real_first_frame_flag(real) -> None:
    """`lead_in_frames` matches the data: without a T-pose, frame 0 continues the motion."""
    _, bvh, pose, skeleton = real
    relative = pose.positions - _joint(bvh, pose, skeleton, "pelvis")[:, None]
    steps = np.abs(np.diff(relative, axis=0)).max(axis=(1, 2))  # Largest joint move per frame pair.
    jump = steps[0] > max(0.1, 3 * np.percentile(steps[1:], 95))
    assert jump == (skeleton.lead_in_frames > 0), (steps[0], np.percentile(steps[1:], 95))
