"""`egoallo train`: train the motion prior on a built dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from ..errors import UserError
from ..inputs.stature import check_stature
from ..files import check_writable_folder, existing_ancestor
from .checks import check_dataset, check_seed
from ..prior.checkpoint import read_sampling
from ..prior.network import PRESETS
from ..prior.training import TrainConfig, train as train_prior


def check_run_folder(out: Path, *, force: bool) -> Path:
    """`out` if a training run can write there (created when missing), checked before any work: a `UserError` for
    a file there, a non-empty folder holding no run of this command (no train_config.json) without `force`, or an
    unwritable place. A folder holding a run is resumed."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file; expected a run directory.")
    if out.is_dir() and any(out.iterdir()) and not (out / "train_config.json").is_file() and not force:
        raise UserError(f"{out} is not empty and holds no training run (no train_config.json); pass --force to "
                        "write the run's files into it.")
    check_writable_folder(existing_ancestor(out))
    return out


def train(
    dataset: Path,
    out: Path,
    model: Literal["default", "medium", "large", "paper"] = "default",
    cond_param: Literal["ours", "canonicalized", "absolute", "absrel"] = "ours",
    include_hands: bool = True,
    steps: int = 10_000,
    batch_size: int = 32,
    window: int = 128,
    learning_rate: float = 3e-4,
    mirror_probability: float = 0.5,
    reshape_probability: float = 0.0,
    reshape_statures: tuple[float, float] | None = None,
    retime_probability: float = 0.0,
    retime_speeds: tuple[float, float] = (0.8, 1.25),
    tilt_head_probability: float = 0.0,
    tilt_head_degrees: float = 30.0,
    sources: tuple[str, ...] | None = None,
    balance_power: float = 1.0,
    merge_groups: tuple[str, ...] = (),
    init_from: Path | None = None,
    teacher: Path | None = None,
    student_steps: int = 8,
    teacher_substeps: int = 4,
    warmup_steps: int = 500,
    val_every: int = 500,
    checkpoint_every: int = 500,
    seed: int = 0,
    threads: int | None = None,
    keep_every: int | None = None,
    val_activities: tuple[str, ...] = (),
    val_balance_power: float = 1.0,
    force: bool = False,
) -> None:
    """Train the diffusion motion prior (resumes from OUT/latest; scale out with torchrun).

    Args:
        dataset: dataset.h5 from `egoallo data build`.
        out: Run directory (checkpoints, loss_log.csv, loss_curve.png).
        model: Network size preset: default (1.9 M parameters), medium (5.2 M), large (9.0 M), paper (50 M).
        cond_param: Conditioning parameterisation (the paper's Table 1).
        include_hands: Also model the 30 finger rotations.
        mirror_probability: Share of training windows reflected left-right.
        reshape_probability: Share of training windows re-performed by a random other body shape.
        reshape_statures: With --reshape-probability, also fit each new body to a stature drawn uniformly from LOW to HIGH metres (e.g. 1.50 1.95: tall and short wearers alike; the built sources are all about 1.57 m).
        retime_probability: Share of training windows played faster or slower.
        retime_speeds: Slowest and fastest playback speed of a re-timed window (drawn log-uniformly).
        tilt_head_probability: Share of training windows whose head is pitched up or down (the rest of the body kept), so that the prior does not read raised arms from a head carried high.
        tilt_head_degrees: Largest pitch of a tilted head, degrees (drawn uniformly from minus to plus it).
        sources: Train (and validate) on these sources only, e.g. `bandai1 bandai2`.
        balance_power: Draw each (source, activity) group of training windows in proportion to its windows to this power: 1 = every window alike, 0.5 = square-root balance (rare activities such as sitting, stairs and idle drawn more), 0 = every group alike.
        merge_groups: Activity groups the balance draws as one: each entry comma-separated patterns of `source/activity`, e.g. `'bandai2/wave-*,bandai2/raise-up-*'` (one activity recorded in six styles counts once).
        init_from: Start from this checkpoint directory's weights (fine-tuning); a resumed run ignores it.
        teacher: Distil this checkpoint directory into a few-step student (starting from its weights unless --init-from is given).
        student_steps: Denoising steps the distilled student is sampled in.
        teacher_substeps: Deterministic teacher steps each student step learns to take at once.
        keep_every: Also keep the weights every N steps as OUT/step_<N> (for a curve of validation against steps).
        val_activities: Activity groups (`cmu_daz/sit`, or `sit` of any source) the val split must hold; the run is refused before any work otherwise.
        val_balance_power: As --balance-power, for the validation windows (0: every activity group alike).
        force: Write the run into a non-empty OUT that holds no training run (its files of the same names are replaced).
    """
    check_run_folder(out, force=force)
    check_dataset(dataset)
    check_seed(seed)
    if reshape_statures is not None:
        low, high = (check_stature(v, "--reshape-statures") for v in reshape_statures)
        if low > high or reshape_probability <= 0:
            raise UserError(f"--reshape-statures takes the shortest and the tallest stature, shortest first, with a "
                            f"--reshape-probability above 0; got {reshape_statures[0]} {reshape_statures[1]} and "
                            f"{reshape_probability}.")
    if not (0.0 <= tilt_head_probability <= 1.0 and 0.0 < tilt_head_degrees <= 90.0):
        raise UserError(f"--tilt-head-probability must be between 0 and 1 and --tilt-head-degrees above 0 and at most "
                        f"90; got {tilt_head_probability} and {tilt_head_degrees}.")
    if not 0 < retime_speeds[0] <= retime_speeds[1]:
        raise UserError(f"--retime-speeds must be two positive speeds, slowest first; got {retime_speeds[0]} {retime_speeds[1]}.")
    for flag, power in (("--balance-power", balance_power), ("--val-balance-power", val_balance_power)):
        if not 0.0 <= power <= 1.0:
            raise UserError(f"{flag} must be between 0 and 1; got {power}.")
    if init_from is not None and not (init_from / "model.safetensors").is_file():
        raise UserError(f"{init_from}: no model.safetensors there (--init-from takes a checkpoint directory).")
    if teacher is not None and not (teacher / "model.safetensors").is_file():
        raise UserError(f"{teacher}: no model.safetensors there (--teacher takes a checkpoint directory).")
    if student_steps < 1 or teacher_substeps < 1:
        raise UserError(f"--student-steps and --teacher-substeps must be at least 1; got {student_steps} and {teacher_substeps}.")
    if teacher is not None and (supported := read_sampling(teacher).steps) and student_steps * teacher_substeps not in supported:
        raise UserError(f"{teacher}: a distilled teacher, sampled in {', '.join(map(str, supported))} steps only; "
                        f"--student-steps x --teacher-substeps must be one of them (got {student_steps * teacher_substeps}).")
    net = dataclasses.replace(PRESETS[model], cond_param=cond_param, include_hands=include_hands)
    config = TrainConfig(
        dataset=dataset, out=out, model=model, cond_param=cond_param, steps=steps, batch_size=batch_size,
        window=window, learning_rate=learning_rate, mirror_probability=mirror_probability,
        reshape_probability=reshape_probability, reshape_statures=reshape_statures, retime_probability=retime_probability,
        retime_speeds=retime_speeds, tilt_head_probability=tilt_head_probability, tilt_head_degrees=tilt_head_degrees,
        sources=sources, balance_power=balance_power, merge_groups=merge_groups,
        init_from=init_from,
        teacher=teacher, student_steps=student_steps, teacher_substeps=teacher_substeps, warmup_steps=warmup_steps,
        val_every=val_every,
        checkpoint_every=checkpoint_every, seed=seed, threads=threads, keep_every=keep_every, val_activities=val_activities,
        val_balance_power=val_balance_power,
    )
    final = train_prior(config, net)
    print(f"checkpoint: {final}")
