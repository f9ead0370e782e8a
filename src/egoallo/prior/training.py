"""Training the motion prior: x0 loss, AdamW with warm-up, clipping, resumable checkpoints.

With a teacher the same loop distils it into a few-step student (progressive
distillation, Salimans & Ho 2022): the student learns, in one deterministic DDIM
step, where several of the teacher's steps lead.

One process or many (`torchrun --nproc-per-node N`, DistributedDataParallel on
the gloo backend for CPUs, nccl for GPUs). Rank 0 writes the loss log, the
loss-curve picture and checkpoints; every rank draws its own windows.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save
from torch import Tensor
from tqdm import tqdm

from ..body import BodyModel
from ..body.stature import betas_with_stature
from ..data.dataset import (
    MotionDataset, mirror_window, reshape_window, retime_source_length, retime_window, merge_patterns, tilt_head_window,
)
from ..errors import UserError
from ..files import opened_atomically, write_bytes_atomic
from .checkpoint import CONFIG_NAME, load_project_checkpoint, read_config, read_trained_on, save_project_checkpoint
from .conditioning import compute_conditioning
from .diffusion import CosineSchedule, ddim_step, project_state, sampling_levels, x0_of_step
from .network import EgoDenoiser, EgoDenoiserConfig
from .state import NUM_BETAS, MotionState


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    dataset: Path
    """A `dataset.h5` written by `egoallo data build`."""
    out: Path
    """Run directory: checkpoints, `loss_log.csv`, `loss_curve.png`."""
    model: str = "default"
    """Network preset (`default` or `paper`)."""
    cond_param: str = "ours"
    """Conditioning: ours | canonicalized | absolute | absrel (the paper's Table 1)."""
    steps: int = 10_000
    batch_size: int = 32
    window: int = 128
    shorten_fraction: float = 0.3
    """Share of windows cut to a random shorter length and masked, as in the paper."""
    mirror_probability: float = 0.5
    """Share of windows reflected left-right (`mirror_window`), doubling the motions seen."""
    reshape_probability: float = 0.0
    """Share of windows re-performed by another body (`reshape_window`): betas moved a uniform
    random fraction of the way towards a draw from the body model's population, N(0, I)."""
    reshape_statures: tuple[float, float] | None = None
    """With reshaping: the new body then also fitted (`betas_with_stature`) to a stature drawn uniformly from this
    range (metres), so that the prior sees short and tall wearers alike. The built sources are retargeted to
    bodies of about 1.57 m, and N(0, I) draws alone reach 1.55-1.76 m (5th-95th percentile)."""
    retime_probability: float = 0.0
    """Share of windows played faster or slower (`retime_window`), at a speed drawn log-uniformly from `retime_speeds`."""
    retime_speeds: tuple[float, float] = (0.8, 1.25)
    tilt_head_probability: float = 0.0
    """Share of windows whose head is pitched further (`tilt_head_window`) by an angle drawn uniformly from
    ±`tilt_head_degrees`, the rest of the body kept."""
    tilt_head_degrees: float = 30.0
    sources: tuple[str, ...] | None = None
    """Train on these sources only (e.g. `bandai1 bandai2` for a cross-dataset test on CMU); default all."""
    balance_power: float = 1.0
    """Training windows: each (source, activity) group drawn in proportion to its windows to this power
    (`MotionDataset`); 1 = every window alike, 0.5 = square-root balance, 0 = every group alike.
    Validation windows are always drawn alike."""
    merge_groups: tuple[str, ...] = ()
    """Groups drawn as one by the balance (`MotionDataset`): each entry comma-separated `fnmatch` patterns of
    `source/activity`, e.g. `bandai2/wave-*,bandai2/raise-up-*` (one activity in six styles)."""
    init_from: Path | None = None
    """Start a new run from this checkpoint's weights (fine-tuning); ignored when resuming OUT/latest."""
    teacher: Path | None = None
    """Distil this checkpoint into a student sampled in `student_steps` steps (the student starts from the
    teacher's weights unless `init_from` says otherwise)."""
    student_steps: int = 8
    teacher_substeps: int = 4
    """Teacher DDIM steps (deterministic) per student step: the teacher runs `student_steps * teacher_substeps`."""
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    grad_clip: float = 1.0
    val_every: int = 500
    val_batches: int = 8
    checkpoint_every: int = 500
    seed: int = 0
    threads: int | None = None
    """torch threads per process (default: torch's choice)."""
    keep_every: int | None = None
    """Also keep the weights every N steps as `OUT/step_<N>` (config and weights only): the snapshots a curve of
    validation against steps is measured on, all from one learning-rate schedule."""
    val_activities: tuple[str, ...] = ()
    """Activity groups (`source/activity`, or an activity of any source) the val split must hold."""
    val_balance_power: float = 1.0
    """As `balance_power`, for the validation windows (0: every activity group alike, an activity-balanced loss)."""


RESUME_FIELDS = ("dataset", "sources", "window", "model", "cond_param", "teacher", "student_steps", "teacher_substeps")
"""What a resumed run must share with the run it resumes: its data and its network."""


MODALITY_WEIGHTS = {"betas": 0.1, "body": 1.0, "contacts": 0.1, "hands": 0.01}


def make_batch(dataset: MotionDataset, rng: np.random.Generator, config: TrainConfig, net: EgoDenoiserConfig,
               body: BodyModel | None = None):
    """Windows of `window + 1` frames: conditioning for frames 1..W and their clean state.

    Windows are mirrored and (with `body`) re-timed and re-shaped as `config` asks.
    Returns `x0 (B, W, D)`, `cond (B, W, C)`, `mask (B, W)` bool, `has_hands (B,)` bool.
    """
    xs, conds, masks, hands = [], [], [], []
    for _ in range(config.batch_size):
        if body is not None and config.retime_probability > 0 and rng.random() < config.retime_probability:
            speed = float(np.exp(rng.uniform(*np.log(config.retime_speeds))))
            w = dataset.random_window(rng, retime_source_length(speed, config.window + 1))
            w = retime_window(w, speed, config.window + 1, body)
        else:
            w = dataset.random_window(rng, config.window + 1)
        if rng.random() < config.mirror_probability:
            w = mirror_window(w)
        if body is not None and rng.random() < config.reshape_probability:
            betas = w["betas"].astype(np.float64)
            betas = betas + rng.random() * (rng.standard_normal(betas.shape) - betas)
            if config.reshape_statures is not None:
                betas = betas_with_stature(body, betas, float(rng.uniform(*config.reshape_statures)))
            w = reshape_window(w, body, betas)
        if body is not None and config.tilt_head_probability > 0 and rng.random() < config.tilt_head_probability:
            w = tilt_head_window(w, math.radians(rng.uniform(-config.tilt_head_degrees, config.tilt_head_degrees)), body)
        mask = torch.from_numpy(w["mask"][1:].copy())
        if rng.random() < config.shorten_fraction:
            keep = int(rng.integers(2, config.window + 1))
            mask[keep:] = False
        T_world_cpf = torch.from_numpy(w["T_world_cpf"]).double()
        conds.append(compute_conditioning(T_world_cpf, net.conditioning).float())
        W = config.window
        state = MotionState(
            betas=torch.from_numpy(w["betas"][:NUM_BETAS]).float().expand(W, NUM_BETAS),
            body_rotations=torch.from_numpy(w["body_rotations"][1:]),
            contacts=torch.from_numpy(w["contacts"][1:, 1:22].astype(np.float32)),
            hand_rotations=torch.from_numpy(w["hand_rotations"][1:]) if net.include_hands else None,
        )
        xs.append(state.pack())
        masks.append(mask)
        hands.append(bool(w["has_hands"]))
    return torch.stack(xs), torch.stack(conds), torch.stack(masks), torch.tensor(hands)


def x0_loss(pred: Tensor, x0: Tensor, level_weight: Tensor, mask: Tensor, has_hands: Tensor,
            include_hands: bool) -> tuple[Tensor, dict[str, float]]:
    """The paper's x0 loss, each window weighted by `level_weight (B,)`; returns the total and each
    modality's (unweighted by level) mean."""
    p = MotionState.unpack(pred, include_hands)
    y = MotionState.unpack(x0, include_hands)
    beta_weights = 1.0 / torch.arange(1, NUM_BETAS + 1, dtype=pred.dtype)
    frame_mask = mask.to(pred.dtype)
    terms = {
        "betas": ((p.betas - y.betas) ** 2 * beta_weights).sum(-1),
        "body": ((p.body_rotations - y.body_rotations) ** 2).sum((-1, -2)).mean(-1),
        "contacts": ((p.contacts - y.contacts) ** 2).mean(-1),
    }
    masks = {k: frame_mask for k in terms}
    if include_hands:
        terms["hands"] = ((p.hand_rotations - y.hand_rotations) ** 2).sum((-1, -2)).mean(-1)
        masks["hands"] = frame_mask * has_hands.to(pred.dtype)[:, None]
    level_weight = level_weight.to(pred.dtype)[:, None]
    total = pred.new_zeros(())
    parts = {}
    for name, value in terms.items():
        m = masks[name]
        denom = m.sum().clamp(min=1.0)
        total = total + MODALITY_WEIGHTS[name] * (level_weight * value * m).sum() / denom
        parts[name] = float((value.detach() * m).sum() / denom)
    return total, parts


@torch.no_grad()
def distillation_targets(teacher: EgoDenoiser, x0: Tensor, cond: Tensor, mask: Tensor, student_steps: int,
                         teacher_substeps: int, schedule: CosineSchedule,
                         generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Noisy windows at the student's levels and the x0 targets that a student step must predict.

    Each window of `x0 (B, W, D)` is noised to a random student level; the teacher takes
    `teacher_substeps` deterministic DDIM steps (its x0 projected as in sampling) down to the
    next student level, and the target is the x0 whose single student step lands there.
    Returns `x_t (B, W, D)`, levels `t (B,)`, target `(B, W, D)`.
    """
    teacher_levels = torch.tensor(sampling_levels(student_steps * teacher_substeps, schedule.num_levels))
    if len(teacher_levels) != student_steps * teacher_substeps + 1:
        raise UserError(f"{student_steps} x {teacher_substeps} steps exceed the {schedule.num_levels} noise levels.")
    alpha_bar = schedule.alpha_bar().to(x0.dtype)
    B = x0.shape[0]
    first = torch.randint(0, student_steps, (B,), generator=generator) * teacher_substeps
    t = teacher_levels[first]
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    x_t = schedule.add_noise(x0, t, noise)
    x = x_t
    for k in range(teacher_substeps):
        level, next_level = teacher_levels[first + k], teacher_levels[first + k + 1]
        predicted = project_state(teacher(x, level, cond, mask), teacher.config.include_hands)
        x = ddim_step(x, predicted, alpha_bar[level][:, None, None], alpha_bar[next_level][:, None, None])
    end = teacher_levels[first + teacher_substeps]
    target = x0_of_step(x_t, x, alpha_bar[t][:, None, None], alpha_bar[end][:, None, None])
    return x_t, t, target


def training_targets(x0: Tensor, cond: Tensor, mask: Tensor, config: TrainConfig, schedule: CosineSchedule,
                     teacher: EgoDenoiser | None, generator: torch.Generator | None = None
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`x_t`, levels `t`, the x0 target and each window's loss weight for one batch.

    Without a teacher: the data at a uniform random level, weighted by the clipped SNR. With
    one: `distillation_targets`, every level weighted alike (the student's few levels are all
    decisions it must get right, the noisiest above all).
    """
    if teacher is None:
        t = torch.randint(1, schedule.num_levels + 1, (x0.shape[0],), generator=generator)
        x_t = schedule.add_noise(x0, t, torch.randn(x0.shape, generator=generator))
        return x_t, t, x0, schedule.loss_weight(t)
    x_t, t, target = distillation_targets(teacher, x0, cond, mask, config.student_steps, config.teacher_substeps,
                                          schedule, generator)
    return x_t, t, target, torch.ones(x0.shape[0])


LOG_HEADER = "step,lr,train_loss,body,betas,contacts,hands,val_loss,elapsed_s"


def _start_log(log_path: Path, start_step: int) -> None:
    """Create the loss log, or keep only its rows up to the resumed step (later ones were not checkpointed)."""
    lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else [LOG_HEADER]
    if not lines or lines[0] != LOG_HEADER:
        raise UserError(f"{log_path}: expected the loss log's header '{LOG_HEADER}' on line 1; move the file away "
                        "to start a new log.")
    kept = [lines[0]]
    for number, line in enumerate(lines[1:], start=2):
        step = line.split(",", 1)[0]
        if not step.isdigit():
            raise UserError(f"{log_path}, line {number}: expected a step number, got '{line[:40]}'; move the file "
                            "away to start a new log.")
        if int(step) <= start_step:
            kept.append(line)
    write_bytes_atomic(log_path, ("\n".join(kept) + "\n").encode())


def _lr(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10 %."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _save_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> None:
    state = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.contiguous() for i, s in state["state"].items() for k, v in s.items() if isinstance(v, Tensor)}
    write_bytes_atomic(path, save(tensors, metadata={"param_groups": json.dumps(state["param_groups"])}))


def _load_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> None:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        groups = json.loads(f.metadata()["param_groups"])
    tensors = load_file(str(path))
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _distributed() -> tuple[int, int]:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _config_differences(a: EgoDenoiserConfig, b: EgoDenoiserConfig) -> list[str]:
    """`name a -> b` for every network setting that differs."""
    return [f"{f.name} {getattr(a, f.name)!r} -> {getattr(b, f.name)!r}"
            for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]


def check_run(config: TrainConfig, net: EgoDenoiserConfig) -> None:
    """Before any work, a one-line `UserError` naming the mismatch: a resumed run whose data or network differ
    from the run it resumes; a teacher whose network (conditioning included) or body model differ from the
    student's; a val split without the activity groups `val_activities` asks for."""
    out = Path(config.out)
    stored = out / "train_config.json"
    if (out / "latest" / "model.safetensors").is_file() and stored.is_file():
        before = json.loads(stored.read_text())
        now = json.loads(json.dumps(dataclasses.asdict(config), default=str))
        differences = [f"{k} {before.get(k)!r} -> {now[k]!r}" for k in RESUME_FIELDS if before.get(k) != now[k]]
        differences += _config_differences(read_config(out / "latest" / CONFIG_NAME), net)
        if differences:
            raise UserError(f"{out}: this run was made with other data or another network ({'; '.join(differences)}); "
                            "resume it with its own settings, or start a new run in another --out.")
    if config.teacher is not None:
        teacher = Path(config.teacher)
        if differences := _config_differences(read_config(teacher / CONFIG_NAME), net):
            raise UserError(f"{teacher}: the teacher's network differs from the student's ({'; '.join(differences)}).")
        theirs, ours = read_trained_on(teacher).get("body_model"), dataset_body_model(config.dataset)
        if theirs and ours and theirs != ours:
            raise UserError(f"{teacher}: the teacher was trained on body model {theirs.get('name')!r} "
                            f"(joints {str(theirs.get('joints_sha256'))[:12]}), the data {config.dataset} on "
                            f"{ours.get('name')!r} (joints {str(ours.get('joints_sha256'))[:12]}).")
    if config.merge_groups:
        train_groups = set(MotionDataset(config.dataset, "train", config.sources).groups)
        for entry in config.merge_groups:
            for pattern in merge_patterns(entry):
                if not any(fnmatch.fnmatchcase(g, pattern) for g in train_groups):
                    raise UserError(f"{config.dataset}: --merge-groups pattern {pattern!r} matches no activity group "
                                    f"of the train split; it holds {', '.join(sorted(train_groups)) or 'nothing'}.")
    if config.val_activities:
        groups = set(MotionDataset(config.dataset, "val", config.sources).groups)
        present = groups | {group.split("/", 1)[1] for group in groups}
        if missing := [a for a in config.val_activities if a not in present]:
            raise UserError(f"{config.dataset}: the val split holds no {', '.join(missing)} clips (--val-activities); "
                            f"it holds {', '.join(sorted(groups)) or 'nothing'}.")


def train(config: TrainConfig, net_config: EgoDenoiserConfig, *, progress: bool = True) -> Path:
    """Train (or resume from `config.out/latest`) and return the final checkpoint directory."""
    check_run(config, net_config)
    rank, world = _distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed + rank)
    rng = np.random.default_rng([config.seed, rank])
    train_set = MotionDataset(config.dataset, "train", config.sources, balance_power=config.balance_power,
                              merge_groups=config.merge_groups)
    val_set = MotionDataset(config.dataset, "val", config.sources, balance_power=config.val_balance_power)
    if not len(train_set):
        raise UserError(f"{config.dataset}: no clips in the train split" + (f" from sources {list(config.sources)}." if config.sources else "."))
    out = Path(config.out)
    latest = out / "latest"

    augments_by_body = config.reshape_probability > 0 or config.retime_probability > 0 or config.tilt_head_probability > 0
    body = BodyModel.load_from_env_or_default(None) if augments_by_body else None
    model = EgoDenoiser(net_config)
    start_step = 0
    teacher = None
    if config.teacher is not None:
        _, teacher = load_project_checkpoint(Path(config.teacher))
        teacher.requires_grad_(False)
    init_from = config.init_from if config.init_from is not None else config.teacher
    if init_from is not None and not (latest / "model.safetensors").exists():
        init_config, model = load_project_checkpoint(Path(init_from))
        if differences := _config_differences(init_config, net_config):
            raise UserError(f"{init_from}: its network differs from the one asked for ({'; '.join(differences)}).")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    if (latest / "model.safetensors").exists():
        _, model = load_project_checkpoint(latest)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        _load_optimizer(latest / "optimizer.safetensors", optimizer)
        start_step = json.loads((latest / "train_state.json").read_text())["step"]
        rng = np.random.default_rng([config.seed, rank, start_step])
    model.train()
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    schedule = CosineSchedule()
    log_path = out / "loss_log.csv"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out / "train_config.json", json.dumps(dataclasses.asdict(config), default=str, indent=2).encode())
        _start_log(log_path, start_step)

    started = time.perf_counter()
    bar = tqdm(range(start_step, config.steps), initial=start_step, total=config.steps, disable=not progress or rank != 0)
    for step in bar:
        lr = _lr(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x0, cond, mask, has_hands = make_batch(train_set, rng, config, net_config, body)
        x_t, t, target, level_weight = training_targets(x0, cond, mask, config, schedule, teacher)
        pred = ddp(x_t, t, cond, mask)
        loss, parts = x0_loss(pred, target, level_weight, mask, has_hands, net_config.include_hands)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")

        last = step + 1 == config.steps
        val = validation_loss(model, val_set, config, net_config, schedule, teacher) if rank == 0 and ((step + 1) % config.val_every == 0 or last) else None
        if rank == 0:
            with log_path.open("a", newline="") as f:
                csv.writer(f).writerow([
                    step + 1, f"{lr:.3g}", f"{loss.item():.5f}", f"{parts['body']:.5f}", f"{parts['betas']:.5f}",
                    f"{parts['contacts']:.5f}", f"{parts.get('hands', 0.0):.5f}", "" if val is None else f"{val:.5f}",
                    f"{time.perf_counter() - started:.1f}",
                ])
            if (step + 1) % config.checkpoint_every == 0 or last:
                _checkpoint(latest, model, optimizer, step + 1, _sampling(config), trained_on(config.dataset))
            if config.keep_every and (step + 1) % config.keep_every == 0:
                snapshot = out / f"step_{step + 1:06d}"
                save_project_checkpoint(snapshot, model, sampling=_sampling(config), trained_on=trained_on(config.dataset))
            if val is not None:
                plot_loss_curve(log_path, out / "loss_curve.png")
    if world > 1:
        dist.barrier()
    return latest


@torch.no_grad()
def validation_loss(model: EgoDenoiser, val_set: MotionDataset, config: TrainConfig, net: EgoDenoiserConfig,
                    schedule: CosineSchedule, teacher: EgoDenoiser | None = None) -> float:
    """Mean loss over fixed validation windows and noise levels (same ones every time); with a teacher, the
    distillation loss."""
    if not len(val_set):
        return float("nan")
    model.eval()
    rng = np.random.default_rng(12345)
    generator = torch.Generator().manual_seed(12345)
    losses = []
    for _ in range(config.val_batches):
        x0, cond, mask, has_hands = make_batch(val_set, rng, config, net)
        x_t, t, target, level_weight = training_targets(x0, cond, mask, config, schedule, teacher, generator)
        loss, _ = x0_loss(model(x_t, t, cond, mask), target, level_weight, mask, has_hands, net.include_hands)
        losses.append(loss.item())
    model.train()
    return float(np.mean(losses))


def _sampling(config: TrainConfig) -> dict | None:
    """The sampling settings a distilled student is trained for (stored in its config.json)."""
    if config.teacher is None:
        return None
    return {"steps": [config.student_steps], "eta": 0.0, "distilled_from": str(config.teacher),
            "teacher_steps": config.student_steps * config.teacher_substeps}


def dataset_body_model(dataset: Path) -> dict | None:
    """The body model a `dataset.h5` was retargeted onto (name and joints hash), from its build's marker file."""
    from ..data.dataset_build import MARKER

    try:
        model = json.loads((Path(dataset).parent / MARKER).read_text()).get("model")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return model if isinstance(model, dict) else None


def trained_on(dataset: Path) -> dict | None:
    """What a checkpoint trained on `dataset` records of it (`save_project_checkpoint`)."""
    model = dataset_body_model(dataset)
    return None if model is None else {"body_model": model}


def _checkpoint(
    directory: Path, model: EgoDenoiser, optimizer, step: int, sampling: dict | None = None, trained: dict | None = None
) -> None:
    """Write a complete checkpoint next to `directory`, then swap it in (a crash never leaves half a checkpoint)."""
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        for p in tmp.iterdir():
            p.unlink()
    tmp.mkdir(parents=True, exist_ok=True)
    save_project_checkpoint(tmp, model, sampling=sampling, trained_on=trained)
    _save_optimizer(tmp / "optimizer.safetensors", optimizer)
    write_bytes_atomic(tmp / "train_state.json", json.dumps({"step": step}).encode())
    old = directory.with_name(directory.name + ".old")
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    if old.exists():
        for p in old.iterdir():
            p.unlink()
        old.rmdir()


def plot_loss_curve(log_path: Path, out: Path) -> None:
    """Training and validation loss against step (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with log_path.open() as f:
        rows = list(csv.DictReader(f))
    steps = np.array([int(r["step"]) for r in rows])
    train_loss = np.array([float(r["train_loss"]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    window = max(1, len(rows) // 100)
    smooth = np.convolve(train_loss, np.ones(window) / window, mode="valid")
    ax.plot(steps[window - 1 :], smooth, label=f"train (mean of {window})")
    val = [(int(r["step"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("weighted x0 loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with opened_atomically(out) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
