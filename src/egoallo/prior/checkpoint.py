"""Loading and saving denoiser checkpoints; weights are only ever read from safetensors.

Two layouts:
- An official EgoAllo release directory: `model_config.yaml` (written by the reference
  with `yaml.dump`, tagged `!!python/object:egoallo.network.EgoDenoiserConfig`) and
  `checkpoints_<step>/model.safetensors` (the latest step is used), or
  `checkpoint/model.safetensors`. The YAML is parsed with a safe loader that knows
  only that one tag.
- This project's own: `model.safetensors` with `config.json` next to it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from safetensors.torch import load_file, save
from torch import Tensor

from egoallo.errors import UserError
from egoallo.files import shortened, write_bytes_atomic

from .diffusion import DEFAULT_ETA, DEFAULT_STEPS
from .network import PRESETS, EgoDenoiser, EgoDenoiserConfig

RELEASE_CONFIG_NAME = "model_config.yaml"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CONFIG_FORMAT = "egoallo.denoiser"
CONFIG_VERSION = 1
_RELEASE_CONFIG_TAG = "tag:yaml.org,2002:python/object:egoallo.network.EgoDenoiserConfig"
_DERIVED_FIELDS = ("d_cond",)
_MAX_LISTED = 5


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


class _ReleaseConfigLoader(yaml.SafeLoader):
    """`SafeLoader` that also reads the reference's config tag, as a plain mapping."""


_ReleaseConfigLoader.add_constructor(
    _RELEASE_CONFIG_TAG, lambda loader, node: loader.construct_mapping(node, deep=True)
)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _MAX_LISTED else "")


def _checked_field(name: str, value: Any, annotation: Any, source: Path) -> Any:
    """`value` if it fits `annotation` (ints are accepted for floats, as floats)."""
    if typing.get_origin(annotation) is Literal:
        ok = value in typing.get_args(annotation)
    elif annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        raise TypeError(f"Unhandled config field type {annotation!r}.")
    if not ok:
        raise CheckpointError(f"{source}: config field {name}={value!r} is invalid (expected {annotation}).")
    return value


def config_from_dict(
    fields: dict[str, Any], source: Path, defaults: EgoDenoiserConfig | None = None
) -> EgoDenoiserConfig:
    """Build a config from `fields`, with errors naming `source`.

    Unknown fields are errors. Missing fields take their value from `defaults`, with a
    warning, or are errors without it. The derived `d_cond` may be present and must agree.
    """
    hints = typing.get_type_hints(EgoDenoiserConfig)
    names = [f.name for f in dataclasses.fields(EgoDenoiserConfig)]
    unknown = sorted(set(fields) - set(names) - set(_DERIVED_FIELDS))
    if unknown:
        raise CheckpointError(f"{source}: unknown config fields: {_listing(unknown)}.")
    missing = [name for name in names if name not in fields]
    if missing and defaults is None:
        raise CheckpointError(f"{source}: missing config fields: {_listing(missing)}.")
    if missing:
        warnings.warn(f"{source}: config fields not given, using defaults: {_listing(missing)}.", stacklevel=2)
    kwargs = {name: _checked_field(name, fields[name], hints[name], source) for name in names if name in fields}
    try:
        config = EgoDenoiserConfig(**kwargs) if defaults is None else dataclasses.replace(defaults, **kwargs)
    except ValueError as e:
        raise CheckpointError(f"{source}: {e}") from e
    for name in _DERIVED_FIELDS:
        if name in fields and fields[name] != getattr(config, name):
            derived = getattr(config, name)
            raise CheckpointError(f"{source}: {name}={fields[name]!r} disagrees with the other fields ({derived}).")
    return config


def read_release_config(path: Path) -> EgoDenoiserConfig:
    """Parse a reference `model_config.yaml`.

    Fields it lacks take the `"paper"` preset's values (with a warning): the reference
    loads such files by falling back to its dataclass defaults, taken to be the paper's.
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: config file not found.")
    try:
        fields = yaml.load(path.read_text(encoding="utf-8"), Loader=_ReleaseConfigLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable denoiser config: {e}") from None
    if not isinstance(fields, dict):
        raise CheckpointError(f"{path}: expected a mapping of config fields, got {type(fields).__name__}.")
    return config_from_dict(fields, path, defaults=PRESETS["paper"])


def read_weights(path: Path) -> dict[str, Tensor]:
    """Tensors of a safetensors file, on the CPU."""
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found.")
    try:
        return load_file(path)
    except Exception as e:  # safetensors raises its own error types for bad headers.
        raise CheckpointError(f"{path}: not a safetensors file ({e}).") from e


META_CHECK_PARAMETERS = 200_000_000
"""Configs larger than this (roughly) are checked against the weights on the meta device before any allocation."""


def _rough_parameter_count(config: EgoDenoiserConfig) -> int:
    """About how many parameters `config` makes (attention, feed-forward and the noise embedding)."""
    d, layers = config.d_latent, config.encoder_layers + config.decoder_layers
    attention = (config.encoder_layers + 2 * config.decoder_layers) * 4 * d * d
    return attention + layers * 2 * d * config.d_feedforward + config.max_t * config.d_noise_emb


def build_model(
    config: EgoDenoiserConfig, weights: dict[str, Tensor], source: Path, device: str | torch.device = "cpu"
) -> EgoDenoiser:
    """An `EgoDenoiser` in eval mode on `device`, holding `weights`; any mismatch is a `CheckpointError`."""
    if _rough_parameter_count(config) > META_CHECK_PARAMETERS:
        with torch.device("meta"):  # shapes only: a config of absurd sizes allocates nothing before it is refused
            expected = EgoDenoiser(config).state_dict()
    else:  # built on the meta device, the noise embedding's init imports torch._dynamo: 1 s of every command
        expected = EgoDenoiser(config).state_dict()
    problems = []
    if missing := sorted(set(expected) - set(weights)):
        problems.append(f"missing tensors: {_listing(missing)}")
    if unexpected := sorted(set(weights) - set(expected)):
        problems.append(f"unexpected tensors: {_listing(unexpected)}")
    misshaped = [
        f"{name} {tuple(weights[name].shape)} (expected {tuple(tensor.shape)})"
        for name, tensor in expected.items()
        if name in weights and weights[name].shape != tensor.shape
    ]
    if misshaped:
        problems.append(f"mis-shaped tensors: {_listing(misshaped)}")
    if problems:
        raise CheckpointError(f"{source}: weights do not fit the config: " + "; ".join(problems) + ".")
    non_finite = [name for name, tensor in weights.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    if non_finite:
        raise CheckpointError(f"{source}: NaN or infinite values in {_listing(sorted(non_finite))}; expected finite "
                              "weights (the file is corrupt).")
    model = EgoDenoiser(config)
    model.load_state_dict(weights)
    return model.to(device).eval()


def _release_weights_path(root: Path) -> Path:
    """`checkpoints_<step>/model.safetensors` with the largest step, else `checkpoint/model.safetensors`."""
    steps = {
        int(match.group(1)): child / WEIGHTS_NAME
        for child in root.iterdir()
        if (match := re.fullmatch(r"checkpoints_(\d+)", child.name)) and (child / WEIGHTS_NAME).is_file()
    }
    if steps:
        return steps[max(steps)]
    if (root / "checkpoint" / WEIGHTS_NAME).is_file():
        return root / "checkpoint" / WEIGHTS_NAME
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    raise CheckpointError(
        f"{root}: no checkpoints_<step>/{WEIGHTS_NAME} or checkpoint/{WEIGHTS_NAME} "
        f"(only safetensors weights are read; found: {_listing(found) or 'nothing'})."
    )


def load_release(path: str | Path, device: str | torch.device = "cpu") -> tuple[EgoDenoiserConfig, EgoDenoiser]:
    """Load an official release directory, or one of its `checkpoints_<step>` folders."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint directory not found.")
    if (path / WEIGHTS_NAME).is_file() and (path.parent / RELEASE_CONFIG_NAME).is_file():
        root, weights_path = path.parent, path / WEIGHTS_NAME
    else:
        root = path
        if not (root / RELEASE_CONFIG_NAME).is_file():
            raise CheckpointError(f"{root / RELEASE_CONFIG_NAME}: config file not found.")
        weights_path = _release_weights_path(root)
    config = read_release_config(root / RELEASE_CONFIG_NAME)
    return config, build_model(config, read_weights(weights_path), weights_path, device)


def save_project_checkpoint(
    directory: str | Path, model: EgoDenoiser, sampling: dict | None = None, trained_on: dict | None = None
) -> None:
    """Write `model.safetensors` and `config.json` into `directory` (created if needed).

    `sampling`: for a distilled student, the steps it supports and its `eta` (see `read_sampling`).
    `trained_on`: what the weights were trained on, e.g. `{"body_model": {"name": ..., "joints_sha256": ...}}`
    (see `read_trained_on`). Each file is written next to its final name and then renamed into place.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"format": CONFIG_FORMAT, "version": CONFIG_VERSION, "config": dataclasses.asdict(model.config)}
    if sampling is not None:
        config["sampling"] = sampling
    if trained_on is not None:
        config["trained_on"] = trained_on
    weights = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    write_bytes_atomic(directory / WEIGHTS_NAME, save(weights))
    write_bytes_atomic(directory / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode())


def read_config(path: Path) -> EgoDenoiserConfig:
    """Parse this project's `config.json`."""
    if not path.is_file():
        raise CheckpointError(f"{path}: config file not found.")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(content, dict) or content.get("format") != CONFIG_FORMAT:
        raise CheckpointError(f"{path}: not a denoiser config (expected \"format\": \"{CONFIG_FORMAT}\").")
    if content.get("version") != CONFIG_VERSION:
        raise CheckpointError(f"{path}: unsupported config version {shortened(content.get('version'))}; expected {CONFIG_VERSION}.")
    if not isinstance(content.get("config"), dict):
        raise CheckpointError(f"{path}: \"config\" must be a mapping of config fields.")
    return config_from_dict(content["config"], path)


@dataclasses.dataclass(frozen=True)
class CheckpointSampling:
    """How a checkpoint is sampled: a prior trained on data takes any step count; a distilled student only
    the ones it was trained for, deterministically."""

    steps: tuple[int, ...] | None = None
    """The step counts a distilled student supports; None: any."""
    eta: float = DEFAULT_ETA
    """DDIM stochasticity."""

    def num_steps(self, asked: int | None, source: Path) -> int:
        """`asked`, or the checkpoint's own step count when None; a `CheckpointError` for one it does not support."""
        if self.steps is None:
            return DEFAULT_STEPS if asked is None else asked
        if asked is None:
            return self.steps[0]
        if asked not in self.steps:
            supported = ", ".join(str(n) for n in self.steps)
            raise CheckpointError(f"{source}: a distilled checkpoint, sampled in {supported} steps only; got --steps "
                                  f"{asked} (other step counts need a checkpoint trained on data, such as its teacher).")
        return asked


def read_sampling(directory: str | Path) -> CheckpointSampling:
    """The sampling settings stored in a project checkpoint's `config.json` (the defaults for any other)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        return CheckpointSampling()
    try:
        sampling = json.loads(path.read_text(encoding="utf-8")).get("sampling")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, AttributeError) as e:
        raise CheckpointError(f"{path}: not a denoiser config ({e}).") from None
    if sampling is None:
        return CheckpointSampling()
    steps, eta = (sampling.get("steps"), sampling.get("eta", DEFAULT_ETA)) if isinstance(sampling, dict) else (None, None)
    valid_steps = isinstance(steps, list) and steps and all(type(n) is int and n >= 1 for n in steps)
    if not valid_steps or type(eta) not in (int, float) or not 0 <= eta <= 1:
        raise CheckpointError(f"{path}: \"sampling\" must hold \"steps\" (a list of positive integers) and \"eta\" "
                              f"(from 0 to 1); got {json.dumps(sampling)[:200]}.")
    return CheckpointSampling(tuple(steps), float(eta))


def read_trained_on(directory: str | Path) -> dict:
    """What a project checkpoint records of its training data (`{}` for checkpoints that record nothing)."""
    try:
        content = json.loads((Path(directory) / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return {}
    trained_on = content.get("trained_on") if isinstance(content, dict) else None
    return trained_on if isinstance(trained_on, dict) else {}


def load_project_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> tuple[EgoDenoiserConfig, EgoDenoiser]:
    """Load a checkpoint written by `save_project_checkpoint`."""
    directory = Path(directory)
    config = read_config(directory / CONFIG_NAME)
    weights_path = directory / WEIGHTS_NAME
    return config, build_model(config, read_weights(weights_path), weights_path, device)


def load_denoiser(path: str | Path, device: str | torch.device = "cpu") -> tuple[EgoDenoiserConfig, EgoDenoiser]:
    """Load either layout: this project's (`config.json`) or an official release."""
    path = Path(path)
    if (path / CONFIG_NAME).is_file():
        return load_project_checkpoint(path, device)
    return load_release(path, device)


def checkpoint_and_sampling(checkpoint: Path | None = None, steps: int | None = None) -> tuple[Path, int, float]:
    """The checkpoint directory to load, its step count and DDIM eta, as the commands choose them.

    Without `checkpoint`: the shipped student for its own step count (the default), the shipped prior
    (its teacher) for any other. With one: its own count unless `steps` is given; a `CheckpointError`
    for a count a distilled checkpoint does not support.
    """
    from ..assets import DEFAULT_CHECKPOINT, STUDENT_CHECKPOINT

    if checkpoint is None:
        student = read_sampling(STUDENT_CHECKPOINT)
        if steps is None or steps in (student.steps or ()):
            return STUDENT_CHECKPOINT, student.num_steps(steps, STUDENT_CHECKPOINT), student.eta
        checkpoint = DEFAULT_CHECKPOINT
    sampling = read_sampling(checkpoint)
    return checkpoint, sampling.num_steps(steps, checkpoint), sampling.eta
