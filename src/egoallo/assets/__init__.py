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
