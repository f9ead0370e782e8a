"""Known BVH source skeletons and their correspondence to SMPL-H joints.

How the mappings were chosen (measured with `forward_kinematics` in standing
frames as heights above the midpoint of the two hip joints, in percent of the
height of the neck joint, and compared with the SMPL neutral template's body
joints, which SMPL-H shares):

- Left/right: SMPL-H "left" is the performer's left. In every clip checked (6
  Bandai Namco 1/2 clips, 4 CMU clips incl. both CMU hierarchies) the performer's
  forward direction was taken from the feet (toe joint minus ankle joint, which
  also agrees with the direction of travel in walk/run clips and is reversed in
  `walk-back`), left = up x forward in the Z-up frame, and the source joints
  named `*_L` / `CC_Base_L_*` (hips, shoulders) lie on that left side (hip pair
  projection +0.13 m Bandai, +0.18..0.19 m CMU). So `_L` maps to `left_`.
- Spine: SMPL-H has three spine joints (spine1/2/3 at 33% / 56% / 65%).
  Bandai has two: `Spine` at 42% (3.5 cm from spine1, 6 cm from spine2) and
  `Chest` at 62% (1.2 cm from spine3; it is also the parent of the neck and
  collars, like spine3), so spine2 is left unmapped. The Character Creator rig of
  the CMU files has `Waist` 18%, `Spine01` 25% (-> spine1, 4.5 cm) and
  `Spine02` 52% (-> spine2, 2.3 cm; 7.5 cm from spine3), so spine3 is left
  unmapped there.
- pelvis: the source root of the body (`Hips`, `CC_Base_Hip`) sits 2 cm above
  the hip joints where SMPL-H's pelvis sits 9 cm (15%) above them; it is mapped
  anyway as the only root candidate, and retargeting should weigh it accordingly.
- neck is the base of the neck (`Neck`, `CC_Base_NeckTwist01`); head is the
  skull-base joint (`Head`, `CC_Base_Head`), at 114-115% in both sources and
  111% in SMPL-H. The collars (`Shoulder_*`, `CC_Base_*_Clavicle`) sit at
  84-93% like SMPL-H's (84%); the CC clavicle is nearer the midline (4.5 cm).
  Twist, share, toe-digit, face and breast bones are not mapped.
- CMU fingers map one to one (`Index/Mid/Ring/Pinky/Thumb 1..3`), but in these
  files they are static relative to the hand (local rotation changes below 1
  degree, except Thumb1), so their positions follow the wrist.

`orientation_joints` are the ends of the mapped chains (head, wrists, toes),
which have no mapped child that moves independently to aim at, and whose
source rotations carry real motion (95th-percentile local rotation change from
the first frame up to 25 degrees for the head, 140 for the wrists, 75 for the
toes; near zero only in clips where that body part is idle).

The CMU subset's first frame is not a T-pose: in all 35 files frame 0 continues
the motion (root-relative joint displacement from frame 0 to 1 is at most 4 cm,
like any other frame pair, with the arms hanging down), so its
`lead_in_frames` is 0.

CMU subjects 10-14 in the cgspeed Daz conversion (Daz Aiko3 rig, one skeleton
for every subject, about centimetres): frame 0 is a synthetic T-pose and the
converter then blends into the motion over about 8 frames at 120 fps (the
largest local rotation change per frame over frames 0-8 is 22, 24, 21, 15, 6,
1, 3, 2 degrees in every clip checked, against a median of 1 later), so
`lead_in_frames` is 10. Mapping, by height above the hip joints in percent of
the neck's height as above: `hip` root (2.6 cm below the thighs, like the
other rigs' roots), `abdomen` 35 % -> spine1, `chest` 57 % -> spine2, `neck`,
`head`; legs `lThigh/lShin/lFoot` and the foot's End Site (12 cm ahead of
the ankle, 4 cm lower: the ball of the foot) -> foot; arms
`lShldr/lForeArm/lHand`. Not mapped: `lCollar` (never rotates in these files
and sits 95 % up, 7 cm from SMPL-H's collar), `lButtock` (a helper between
root and thigh) and the two-segment fingers. `l*` is the performer's left
(checked as above). All subjects share the rig's bone lengths, whose odd
proportions (37 cm thighs, 45 cm shins, narrow shoulders) fitted freely give
an extreme body (|beta| 5.8 on 14_27) for no better fit (31.8 vs 31.7 mm with
a strong shape prior, stature 1.68 vs 1.69 m), so its `beta_prior_weight` keeps
the shape near the mean.

ReActIdle (Blender metarig, metres, markerless capture): `pelvis` root at
the hip joints' height, `spine` at the root, `spine.001` at 48 % -> spine2
(3.7 cm from it), `neck` -> neck, `face` (the skull base, 17 cm above the
neck base) -> head; `upper_arm/forearm` and the forearm's End Site -> shoulder,
elbow, wrist; `thigh/shin/foot` and the foot's End Site (the toe tip) -> hip,
knee, ankle, foot. `shoulder.L/R` start on the midline at the neck, so the
collars are not mapped. There are no hands, so the wrists' orientations are
the forearms' and are not used for aiming. Bone lengths differ per performer,
but the rig's proportions fitted freely give extreme bodies (|beta| 10-23,
e.g. 23 on 011_acted, 37.0 mm), so a tenfold shape prior keeps them plausible
(|beta| 1.4, 38.0 mm; stature 1.81 instead of 1.89 m on that performer).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from egoallo.body.skeleton import JOINT_NAMES
from egoallo.data.bvh import Bvh


class UnknownSkeletonError(ValueError):
    """A BVH file's joints match none of the known source skeletons."""


@dataclasses.dataclass(frozen=True)
class SourceSkeleton:
    """A known BVH skeleton and how its joints correspond to SMPL-H joints."""

    name: Literal["bandai", "cmu", "daz", "reactidle"]
    joint_map: dict[str, str]
    """SMPL-H joint name -> source joint or end site name (`Bvh.point_names`), in SMPL-H joint order."""
    orientation_joints: tuple[str, ...]
    """SMPL-H joints (keys of `joint_map`) whose source orientations are trustworthy for aiming."""
    lead_in_frames: int
    """Frames at the start that are not motion (a calibration T-pose and any blend out of it)."""
    unit_scale: float = 0.01
    """Metres per file unit."""
    lowpass_hz: float | None = None
    """Cut-off of the zero-phase low-pass filter applied to the source motion (markerless capture jitters)."""
    beta_prior_weight: float | None = None
    """Overrides `RetargetConfig.beta_prior_weight`: strong where every performer was retargeted onto one
    rig before us, so its bone lengths say nothing about the performer and the body stays near the mean shape."""

    def __post_init__(self) -> None:
        unknown = set(self.joint_map) - set(JOINT_NAMES)
        assert not unknown, f"not SMPL-H joints: {sorted(unknown)}"
        assert set(self.orientation_joints) <= set(self.joint_map)

    def matches(self, bvh: Bvh) -> bool:
        """Whether every mapped source joint is present in `bvh`."""
        return set(self.joint_map.values()) <= set(bvh.point_names)


def _sided(pairs: dict[str, str], left: str, right: str) -> dict[str, str]:
    """Expand `{"hip": "UpperLeg_{side}"}` into left/right SMPL-H entries."""
    out: dict[str, str] = {}
    for smpl, source in pairs.items():
        out[f"left_{smpl}"] = source.format(side=left)
        out[f"right_{smpl}"] = source.format(side=right)
    return out


def _in_smpl_order(joint_map: dict[str, str]) -> dict[str, str]:
    return {name: joint_map[name] for name in JOINT_NAMES if name in joint_map}


_LEAF_ORIENTATIONS = ("head", "left_wrist", "right_wrist", "left_foot", "right_foot")

BANDAI = SourceSkeleton(
    name="bandai",
    joint_map=_in_smpl_order(
        {"pelvis": "Hips", "spine1": "Spine", "spine3": "Chest", "neck": "Neck", "head": "Head"}
        | _sided(
            {
                "hip": "UpperLeg_{side}",
                "knee": "LowerLeg_{side}",
                "ankle": "Foot_{side}",
                "foot": "Toes_{side}",
                "collar": "Shoulder_{side}",
                "shoulder": "UpperArm_{side}",
                "elbow": "LowerArm_{side}",
                "wrist": "Hand_{side}",
            },
            left="L",
            right="R",
        )
    ),
    orientation_joints=_LEAF_ORIENTATIONS,
    lead_in_frames=0,
)

_CMU_FINGERS = {"index": "Index", "middle": "Mid", "ring": "Ring", "pinky": "Pinky", "thumb": "Thumb"}

CMU = SourceSkeleton(
    name="cmu",
    joint_map=_in_smpl_order(
        {
            "pelvis": "CC_Base_Hip",
            "spine1": "CC_Base_Spine01",
            "spine2": "CC_Base_Spine02",
            "neck": "CC_Base_NeckTwist01",
            "head": "CC_Base_Head",
        }
        | _sided(
            {
                "hip": "CC_Base_{side}_Thigh",
                "knee": "CC_Base_{side}_Calf",
                "ankle": "CC_Base_{side}_Foot",
                "foot": "CC_Base_{side}_ToeBase",
                "collar": "CC_Base_{side}_Clavicle",
                "shoulder": "CC_Base_{side}_Upperarm",
                "elbow": "CC_Base_{side}_Forearm",
                "wrist": "CC_Base_{side}_Hand",
            }
            | {
                f"{smpl}{k}": f"CC_Base_{{side}}_{cc}{k}"
                for smpl, cc in _CMU_FINGERS.items()
                for k in (1, 2, 3)
            },
            left="L",
            right="R",
        )
    ),
    orientation_joints=_LEAF_ORIENTATIONS,
    lead_in_frames=0,
)

DAZ = SourceSkeleton(
    name="daz",
    joint_map=_in_smpl_order(
        {"pelvis": "hip", "spine1": "abdomen", "spine2": "chest", "neck": "neck", "head": "head"}
        | _sided(
            {
                "hip": "{side}Thigh",
                "knee": "{side}Shin",
                "ankle": "{side}Foot",
                "foot": "{side}Foot/end",
                "shoulder": "{side}Shldr",
                "elbow": "{side}ForeArm",
                "wrist": "{side}Hand",
            },
            left="l",
            right="r",
        )
    ),
    orientation_joints=_LEAF_ORIENTATIONS,
    lead_in_frames=10,
    beta_prior_weight=1e-2,
)

REACTIDLE = SourceSkeleton(
    name="reactidle",
    joint_map=_in_smpl_order(
        {"pelvis": "pelvis", "spine2": "spine.001", "neck": "neck", "head": "face"}
        | _sided(
            {
                "hip": "thigh.{side}",
                "knee": "shin.{side}",
                "ankle": "foot.{side}",
                "foot": "foot.{side}/end",
                "shoulder": "upper_arm.{side}",
                "elbow": "forearm.{side}",
                "wrist": "forearm.{side}/end",
            },
            left="L",
            right="R",
        )
    ),
    orientation_joints=("head", "left_foot", "right_foot"),
    lead_in_frames=0,
    unit_scale=1.0,
    lowpass_hz=6.0,
    beta_prior_weight=1e-4,
)

KNOWN_SKELETONS: tuple[SourceSkeleton, ...] = (BANDAI, CMU, DAZ, REACTIDLE)


def identify_skeleton(bvh: Bvh) -> SourceSkeleton:
    """The known skeleton whose mapped joints all appear in `bvh`.

    Raises:
        UnknownSkeletonError: naming the file, its first joints and what the
            closest known skeleton lacks.
    """
    for skeleton in KNOWN_SKELETONS:
        if skeleton.matches(bvh):
            return skeleton
    present = set(bvh.point_names)
    closest = min(KNOWN_SKELETONS, key=lambda s: len(set(s.joint_map.values()) - present))
    missing = [j for j in closest.joint_map.values() if j not in present]
    raise UnknownSkeletonError(
        f"{bvh.source}: unknown BVH skeleton (first joints: {', '.join(bvh.joint_names[:5])}); "
        f"closest known skeleton {closest.name!r} lacks {len(missing)} joints, e.g. "
        f"{', '.join(missing[:3])}"
    )
