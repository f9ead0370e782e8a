"""`egoallo batch`: `egoallo infer` over a corpus of recordings, resumable, on all cores or a Ray cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import tyro

from .checks import check_range, check_seed, guidance_modes


def batch(
    corpus: Annotated[Path, tyro.conf.Positional],
    out: Path,
    workers: int | None = None,
    ray: str | None = None,
    force: bool = False,
    checkpoint: Path | None = None,
    floor_z: float | None = None,
    device_is_cpf: bool = False,
    up: str | None = None,
    guidance: tuple[Literal["off", "feet", "wrist3d", "hands"], ...] = ("feet",),
    guidance_inner: bool = False,
    samples: int = 1,
    consensus: Literal["mean", "bones", "medoid"] = "bones",
    guided: Literal["consensus", "samples", "both"] = "consensus",
    steps: int | None = None,
    seed: int = 0,
    device: Literal["cpu", "cuda"] = "cpu",
    threads: int = 1,
    body_model: Path | None = None,
    stature: Annotated[str | None, tyro.conf.arg(metavar="METRES")] = None,
) -> int:
    """Estimate every recording of a corpus (folder or manifest) into OUT/<name>/result.npz, resumably, locally or on Ray.

    Each result is the file `egoallo infer` writes for that recording with the same flags (its companions as
    --points, --calibration, --wrist-palm, --hands/--vrs). OUT/summary.csv gets a row per recording. Exit code:
    0 every recording has its result, 3 some failed (their rows say why), 130 interrupted, 2 bad input.

    Args:
        corpus: A folder (Aria MPS outputs as plain MPS, Nymeria and Aria Everyday Activities lay them out, and loose TUM .txt, .npz or MPS .csv trajectories), or a manifest .csv/.jsonl with columns trajectory, points, calibration, wrist_palm, hands, vrs, stature (metres), name (paths relative to the manifest).
        out: Output folder (outside the corpus): OUT/<name>/result.npz per recording and OUT/summary.csv. A rerun skips the recordings whose result was made from the same inputs, options and checkpoint.
        workers: Recordings estimated at once (one process and one thread each); default: the cores this process may use (with --ray: the cluster's CPUs).
        ray: Run on Ray (pip install 'egoallo[cluster]'): --ray alone (or --ray local) starts a local cluster, --ray ADDRESS joins a running one (host:port, ray://host:port or auto). Workers write the results themselves: OUT must be shared storage at the same path on every node.
        force: Estimate every recording again, also those done before (and replace result files not written by egoallo batch).
        checkpoint: Model directory (this project's, or an official EgoAllo release); default: the shipped one.
        floor_z: The floor's height along the up axis in every trajectory's world frame (the recordings' point clouds are then not used).
        device_is_cpf: The trajectories' poses are already CPF poses (identity calibration; the recordings' calibrations are then not used).
        up: Up axis of TUM/npz worlds without gravity information (z, y, -y, ...).
        guidance: Levenberg-Marquardt guidance after sampling: feet, wrist3d (each recording's wrist and palm tracking), hands (its hands file, else hands detected in its .vrs); a recording without the file a term needs fails; default: feet (--guidance off: none), as egoallo infer.
        guidance_inner: Also guide inside every denoising step (slower; the paper's strongest mode).
        samples: Number of motion samples per recording; with two or more, each result also holds their consensus body and each joint's spread, as egoallo infer --samples.
        consensus: With two or more samples, the consensus body: bones, mean or medoid, as egoallo infer --consensus.
        guided: With two or more samples and guidance, which bodies are guided (consensus, samples or both), as egoallo infer --guided.
        steps: Denoising steps; default: the checkpoint's own.
        seed: Random seed (the same for every recording, as egoallo infer's default).
        device: Torch device for the network.
        threads: Torch threads per worker.
        body_model: Body model .npz (official SMPL-H model.npz or this project's); default: $EGOALLO_SMPLH_MODEL or the shipped open model.
        stature: The wearer's height in metres, as egoallo infer --stature, for every recording (a manifest's stature column gives each its own).
    """
    if steps is not None:
        check_range("--steps", steps, 1)
    check_range("--threads", threads, 1)
    check_seed(seed)
    modes = guidance_modes(guidance)

    from ..batch import BatchOptions, run_corpus
    from ..inputs.stature import check_stature
    from ..pipeline import InferOptions

    infer = InferOptions(
        checkpoint=checkpoint, floor_z=floor_z, device_is_cpf=device_is_cpf, up=up, guidance_inner=guidance_inner,
        samples=samples, consensus=consensus, guided=guided, steps=steps, seed=seed, device=device, threads=threads,
        body_model=body_model, stature_m=None if stature is None else check_stature(stature),
    )
    report = run_corpus(corpus, out, BatchOptions(infer=infer, guidance=modes, force=force), workers=workers, ray=ray)
    for line in report.lines():
        print(line)
    return report.exit_code
