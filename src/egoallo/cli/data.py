"""`egoallo data ...`: build the training set from the shared motion-capture archives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import tyro

from ..body import BodyModel
from ..data.dataset_build import BuildError, build_dataset
from ..data.sources import ARCHIVE_SOURCES, SharedDirError
from ..errors import UserError
from ..files import check_output_folder, require_file
from ..progress import progress_bar


def build(
    out: Path,
    sources: tuple[Literal["bandai1", "bandai2", "cmu", "cmu_daz", "reactidle"], ...] = ARCHIVE_SOURCES,
    amass_dir: Path | None = None,
    workers: int = 2,
    limit_per_source: int | None = None,
    train_fraction: tuple[str, ...] = (),
    splits: tuple[Literal["train", "val", "test"], ...] = ("train", "val", "test"),
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
        train_fraction: SOURCE:FRACTION pairs, e.g. bandai2:0.25: build only that fixed share of the source's train clips (chosen by a hash of the clip id); val and test clips are always built.
        splits: Build only the clips of these splits in this run (a later run adds the others); the dataset is packed from every clip built so far.
        body_model: Body model .npz: official SMPL-H model.npz or this project's (else $EGOALLO_SMPLH_MODEL, else the shipped model).
        force: Discard a previous build in OUT and start over.
    """
    fractions = {}
    for pair in train_fraction:
        source, _, value = pair.partition(":")
        try:
            fractions[source] = float(value)
        except ValueError:
            raise UserError(f"--train-fraction expects SOURCE:FRACTION (e.g. bandai2:0.25); got {pair!r}.") from None
    try:
        model = BodyModel.load_from_env_or_default(body_model)
        summary = build_dataset(
            out,
            model=model,
            sources=sources,
            amass_dir=amass_dir,
            workers=workers,
            limit_per_source=limit_per_source,
            train_fraction=fractions,
            splits=splits,
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
    require_file(clip, "a BVH motion-capture clip")
    check_output_folder(out, force=force)
    from ..data.bvh import BvhError, read_bvh
    from ..data.retarget import RetargetError, retarget
    from ..data.skeletons import UnknownSkeletonError
    from ..evaluation.cases import make_case as write_case

    with progress_bar(total=3, desc=f"{clip.name}: reading", unit="step") as bar:
        try:
            model = BodyModel.load_from_env_or_default(body_model)
            bvh = read_bvh(clip)
            bar.set_description(f"{clip.name}: retargeting")
            bar.update()
            result = retarget(bvh, model)
        except (BvhError, UnknownSkeletonError, RetargetError) as e:
            raise UserError(str(e)) from None
        bar.set_description(f"{clip.name}: writing the case")
        bar.update()
        write_case(result.motion, model, out, force=force)
        bar.update()
    m = result.motion
    print(f"wrote {out}/trajectory.csv and gt.npz: {m.num_frames} frames ({m.duration_s:.1f} s), fit error {result.mean_error_mm:.1f} mm")
