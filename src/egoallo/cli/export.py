"""`egoallo export`: a result in other tools' formats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import tyro

from ..errors import UserError
from ..files import check_output, require_file

SUFFIXES = {"bvh": ".bvh", "amass": ".npz", "glb": ".glb"}


def export(
    result: Annotated[Path, tyro.conf.Positional],
    to: Literal["bvh", "amass", "glb"],
    out: Path,
    sample: int | None = None,
    body_model: Path | None = None,
    force: bool = False,
) -> None:
    """Export one body of a result.npz: BVH of the 52-joint skeleton, an AMASS-style .npz (for SMPL-H users), or an animated body mesh (.glb).

    Args:
        result: result.npz from `egoallo infer`.
        to: Output format.
        out: Output file; refuses to overwrite without --force.
        sample: Which sample; default: the consensus of the samples when the result has one (the AMASS-style .npz then carries its joint_spread_m), else sample 0.
        body_model: The body model the result was made with (default: $EGOALLO_SMPLH_MODEL or the shipped one).
    """
    check_output(out, (SUFFIXES[to],), force=force)
    require_file(result, "a result.npz from egoallo infer")
    from ..body import BodyModel
    from ..export import frame_times, result_motion, write_amass_npz, write_bvh, write_glb
    from ..result import InferenceResult, check_body_model

    data = InferenceResult.load(result)
    if sample is not None and not 0 <= sample < data.num_samples:
        raise UserError(f"{result}: has {data.num_samples} sample(s); --sample {sample} is out of range.")
    if (gaps := data.metadata.get("gaps")) and to != "glb":
        print(f"warning: {result} holds {len(gaps) + 1} segments separated by tracking gaps; {to} frames are evenly "
              "spaced, so the segments play back to back (--to glb keeps the times)")
    body = BodyModel.load_from_env_or_default(body_model)
    check_body_model(data, body, str(result))
    motion = result_motion(data, sample)
    if to == "glb":
        write_glb(out, motion, body, frame_times(data.timestamps_ns))
    elif to == "bvh":
        write_bvh(out, motion, body)
    else:
        write_amass_npz(out, motion, body, data.joint_spread_m if motion.name == "consensus" else None)
    print(f"wrote {out} ({motion.name}, {motion.num_frames} frames)")
