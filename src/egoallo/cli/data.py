"""`egoallo data ...`: build the training set from the shared motion-capture archives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import tyro

from ..body import BodyModel
from ..data.dataset_build import BuildError, build_dataset
from ..data.sources import ARCHIVE_SOURCES, SharedDirError
from ..errors import UserError


def build(
    out: Path,
    sources: tuple[Literal["bandai1", "bandai2", "cmu", "cmu_daz", "reactidle"], ...] = ARCHIVE_SOURCES,
    amass_dir: Path | None = None,
    workers: int = 2,
    limit_per_source: int | None = None,
    body_model: Path | None = None,
    force: bool = False,
) -> None:
    """Retarget the mocap archives (and AMASS) onto the body model and pack OUT/dataset.h5.

    Resumes an interrupted build in OUT; refuses a non-empty OUT that is not a build of this tool.

    Args:
        out: Output directory (per-clip npz cache, dataset.h5, build log, summary).
        sources: Archives under ../shared/datasets (or $EGOALLO_SHARED) to build.
        amass_dir: Also build AMASS sequences from this directory (needs --body-model).
        workers: Worker processes (0: run in this process).
        limit_per_source: Only the first N clips of each source, in archive order.
        body_model: Body model .npz: official SMPL-H model.npz or this project's (else $EGOALLO_SMPLH_MODEL, else the shipped model).
        force: Discard a previous build in OUT and start over.
    """
    try:
        model = BodyModel.load_from_env_or_default(body_model)
        summary = build_dataset(
            out,
            model=model,
            sources=sources,
            amass_dir=amass_dir,
            workers=workers,
            limit_per_source=limit_per_source,
            force=force,
        )
    except (BuildError, SharedDirError) as e:
        raise UserError(str(e)) from None
    print(summary.table())
    print(f"wrote {summary.dataset_path}")


def make_case(
    clip: Annotated[Path, tyro.conf.Positional],
    out: Path,
    body_model: Path | None = None,
    force: bool = False,
) -> None:
    """Turn a motion-capture clip (BVH of a known skeleton) into an evaluation case: OUT/trajectory.csv + OUT/gt.npz.

    Args:
        clip: BVH file of a known skeleton (Bandai Namco, CMU subset, CMU Daz conversion, ReActIdle).
        out: Case directory.
        body_model: Body model .npz: official SMPL-H model.npz or this project's (else $EGOALLO_SMPLH_MODEL, else the shipped model).
        force: Overwrite the case files in a non-empty OUT.
    """
    from ..data.bvh import BvhError, read_bvh
    from ..data.retarget import RetargetError, retarget
    from ..data.skeletons import UnknownSkeletonError
    from ..evaluation.cases import make_case as write_case

    try:
        model = BodyModel.load_from_env_or_default(body_model)
        result = retarget(read_bvh(clip), model)
    except (BvhError, UnknownSkeletonError, RetargetError) as e:
        raise UserError(str(e)) from None
    except FileNotFoundError:
        raise UserError(f"{clip}: file not found.") from None
    write_case(result.motion, model, out, force=force)
    m = result.motion
    print(f"wrote {out}/trajectory.csv and gt.npz: {m.num_frames} frames ({m.duration_s:.1f} s), fit error {result.mean_error_mm:.1f} mm")
