"""Files shipped with the package: the default prior checkpoint and an example trajectory."""

from pathlib import Path

ASSETS = Path(__file__).parent
DEFAULT_CHECKPOINT = ASSETS / "checkpoint"
"""This project's default motion-prior checkpoint (`config.json` + `model.safetensors`); see its PROVENANCE.md."""
EXAMPLE_TRAJECTORY = ASSETS / "example" / "trajectory.csv"
"""A held-out head trajectory in Aria MPS layout whose device frame is the CPF; see example/README.md."""
