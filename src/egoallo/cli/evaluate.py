"""`egoallo eval`: the paper's metrics on the held-out split of a built dataset."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Literal

from ..body import BodyModel
from ..errors import UserError
from ..files import check_output_files
from ..inputs.stature import check_stature
from .checks import check_dataset, check_range, check_seed
from ..evaluation.baselines import NearestNeighbourPredictor, rest_pose_predictor
from ..evaluation.benchmark import (
    EvalConfig,
    diffusion_predictor,
    evaluate,
    markdown_table,
    write_report,
)
from ..prior.checkpoint import checkpoint_and_sampling, load_denoiser


def checkpoint_digest(directory: Path) -> str:
    """SHA-256 over a checkpoint directory's files (names and contents), so reports name the exact weights."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def method_names(modes: frozenset[str], floor: str, baselines: bool,
                 stature_range: tuple[float, float] | None = None, with_stature: bool = False) -> list[str]:
    """The report names of the methods evaluated: the prior (with its guidance), then the baselines."""
    suffix = ("" if floor == "points" else f"_floor-{floor}") + ("_with-stature" if with_stature and floor != "stature" else "")
    if stature_range is not None:
        suffix += f"_statures-{stature_range[0]:.2f}-{stature_range[1]:.2f}"
    prior = "egoallo" + "".join(f"+{m}" for m in sorted(modes)) + suffix
    return [prior, *((f"rest_pose{suffix}", f"nearest_neighbour{suffix}") if baselines else ())]


def report_files(names: list[str], windows: tuple[int, ...]) -> list[str]:
    """The files `write_report` writes: `<name>_w<window>.json` and `.md` for every method and window."""
    return [f"{name}_w{window}{ext}" for window in windows for name in names for ext in (".json", ".md")]


def evaluate_cli(
    dataset: Path,
    out: Path,
    checkpoint: Path | None = None,
    windows: tuple[int, ...] = (32, 128),
    samples: int = 1,
    steps: int | None = None,
    seed: int = 0,
    max_windows: int | None = None,
    window_step: int = 1,
    baselines: bool = False,
    guidance: tuple[Literal["off", "feet", "wrist3d"], ...] = ("off",),
    floor: Literal["points", "trajectory", "stature", "true"] = "points",
    stature_range: tuple[float, float] | None = None,
    with_stature: bool = False,
    split: str = "test",
    sources: tuple[str, ...] | None = None,
    body_model: Path | None = None,
    consensus: Literal["mean", "bones", "medoid"] = "bones",
    guided: Literal["consensus", "samples", "both"] = "consensus",
    force: bool = False,
) -> None:
    """Evaluate the prior (and optionally the no-learning baselines) on held-out windows; writes JSON + markdown.

    Args:
        dataset: dataset.h5 from `egoallo data build`.
        out: Report directory (`<name>_w<window>.json` / `.md`).
        checkpoint: Model directory (default: the shipped one).
        steps: Denoising steps; default: the checkpoint's own (see `egoallo infer --help`).
        windows: Window lengths in frames (the paper: 32 and 128).
        samples: Samples per window; with two or more, their consensus body is measured too, against the same window estimated with one sample, and the spread's Spearman correlation with the error and its coverage.
        max_windows: Only the first N windows (quick checks).
        window_step: Only every N-th window (a cheaper run that still covers every clip type).
        baselines: Also evaluate the rest-pose and nearest-neighbour baselines.
        guidance: Guidance after sampling (feet, wrist3d with exact true wrist/palm observations), combinable.
        floor: The floor the method gets: points (a SLAM point cloud's, simulated as the true floor plus 2 cm Gaussian error), trajectory (no point cloud: estimated from the clip's head trajectory), stature (no point cloud, the wearer's true stature given, as egoallo infer --stature takes it), true (an upper bound no user has).
        stature_range: LOW HIGH (m): every clip performed again by a body of a stature drawn uniformly from this range (the body-shape augmentation; one draw per clip), e.g. 1.50 1.95.
        with_stature: Also give the method the true stature (as egoallo infer --stature) with the floor of --floor (points, true): what knowing the stature adds when the floor is known.
        sources: Only clips of these sources (e.g. `cmu` for the cross-dataset test).
        consensus: With two or more samples, the consensus body: bones (each body joint's world orientation averaged, the default), mean (each local rotation averaged) or medoid (the sample nearest the others).
        guided: With two or more samples and guidance, which bodies are guided: the consensus only (as egoallo infer does), every sample, or both.
        force: Overwrite reports of the same names in OUT.
    """
    for flag, value in (("--samples", samples), ("--window-step", window_step),
                        *(("--windows", w) for w in windows), *((("--max-windows", max_windows),) if max_windows else ()),
                        *((("--steps", steps),) if steps is not None else ())):
        check_range(flag, value, 1)
    check_seed(seed)
    if stature_range is not None:
        for value in stature_range:
            check_stature(value, "--stature-range")
        if stature_range[0] > stature_range[1]:
            raise UserError(f"--stature-range {stature_range[0]:g} {stature_range[1]:g}: expected LOW HIGH, low first.")
    modes = frozenset(guidance) - {"off"}
    from ..resources import MemoryNeed, available_memory, check_memory

    check_memory(MemoryNeed((max(windows),), samples, max(windows) if modes else 0), f"--windows {max(windows)}",
                 available_memory())
    names = method_names(modes, floor, baselines, stature_range, with_stature)
    check_output_files(out, report_files(names, windows), force=force)
    check_dataset(dataset)
    body = BodyModel.load_from_env_or_default(body_model)
    checkpoint, steps, eta = checkpoint_and_sampling(checkpoint, steps)
    _, denoiser = load_denoiser(checkpoint)
    for window in windows:
        config = EvalConfig(window=window, samples=samples, num_steps=steps, eta=eta, seed=seed, max_windows=max_windows,
                            window_step=window_step, guidance=modes, floor=floor, stature_range=stature_range,
                            with_stature=with_stature, consensus=consensus, guided=guided)
        predictors = [diffusion_predictor(denoiser, body, config)]
        if baselines:
            predictors += [rest_pose_predictor(body), NearestNeighbourPredictor(body, dataset, window)]
        for name, predict in zip(names, predictors):
            results, skipped = evaluate(dataset, predict, body, config, split=split, sources=sources)
            meta = {"checkpoint": str(checkpoint), "checkpoint_sha256": checkpoint_digest(checkpoint),
                    "dataset": str(dataset), "split": split, "sources": sources,
                    "config": {**dataclasses.asdict(config), "guidance": sorted(config.guidance)}, "method": name}
            if not results:
                raise UserError(f"{dataset}: no {window}-frame window of split {split!r} could be evaluated "
                                f"({len(skipped)} skipped; first: {skipped[0].clip_id}: {skipped[0].reason})." if skipped
                                else f"{dataset}: split {split!r} has no clips" + (f" from {list(sources)}." if sources else "."))
            summary = write_report(out, f"{name}_w{window}", results, meta, skipped)
            print(markdown_table(summary, f"{name}, {window}-frame windows"))
            if skipped:
                print(f"skipped {len(skipped)} case(s); listed in {out / f'{name}_w{window}.md'}:")
                for case in skipped[:10]:
                    print(f"  {case.clip_id}" + ("" if case.start is None else f" @ {case.start}") + f": {case.reason}")
            medians = {f"{m}_median": summary["all"][m]["median"] for m in ("floor_error_cm", "stature_error_cm")}
            several = {}
            if spread := summary.get("spread"):
                several = {f"{m}_activity_mean": summary["activity_mean"][m] for m in ("mpjpe_single", "mpjpe_consensus")}
                several |= {"spread_spearman": spread["spearman"], "spread_coverage": spread["stated_vs_observed"]}
            print(json.dumps({"method": name, "window": window, "mpjpe_activity_mean": summary["activity_mean"]["mpjpe"],
                              "activities": summary["activity_mean"]["activities"], "mpjpe_window_mean": summary["all"]["mpjpe"],
                              **medians, **several}))
