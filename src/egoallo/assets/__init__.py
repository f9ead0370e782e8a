"""Files shipped with the package: the prior, its distilled student, and an example trajectory."""

from pathlib import Path

ASSETS = Path(__file__).parent
DEFAULT_CHECKPOINT = ASSETS / "checkpoint"
"""This project's motion prior (`config.json` + `model.safetensors`), sampled in any number of steps (30 by
default); see its PROVENANCE.md."""
STUDENT_CHECKPOINT = ASSETS / "student"
"""The prior distilled into a student sampled in few steps: what `egoallo infer`, `eval` and `live` run unless
`--steps` asks for another count; see its PROVENANCE.md."""
EXAMPLE_TRAJECTORY = ASSETS / "example" / "trajectory.csv"
"""A held-out head trajectory in Aria MPS layout whose device frame is the CPF; see example/README.md."""


def checkpoint_and_sampling(checkpoint: Path | None = None, steps: int | None = None) -> tuple[Path, int, float]:
    """The checkpoint directory to load, its step count and DDIM eta, as the commands choose them.

    Without `checkpoint`: the shipped student for its own step count (the default), the shipped prior
    (its teacher) for any other. With one: its own count unless `steps` is given; a `CheckpointError`
    for a count a distilled checkpoint does not support.
    """
    from ..prior.checkpoint import read_sampling  # here, not above: the CLI imports this module before torch

    if checkpoint is None:
        student = read_sampling(STUDENT_CHECKPOINT)
        if steps is None or steps in (student.steps or ()):
            return STUDENT_CHECKPOINT, student.num_steps(steps, STUDENT_CHECKPOINT), student.eta
        checkpoint = DEFAULT_CHECKPOINT
    sampling = read_sampling(checkpoint)
    return checkpoint, sampling.num_steps(steps, checkpoint), sampling.eta
