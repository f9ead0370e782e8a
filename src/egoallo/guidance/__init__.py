"""Guidance: Levenberg–Marquardt refinement of sampled motion (feet, Aria wrist tracking, hand keypoints).

guided, log = guide(body, state, T_world_cpf, mode={"feet"}, floor_z=0.0)
"""

from .problem import MODES, GuidanceLog, GuidanceProblem, build_problem, guide
from .solver import LMConfig, SolverLog, levenberg_marquardt
from .weights import GuidanceWeights
from .wrist import wrist_observations

__all__ = [
    "MODES",
    "GuidanceLog",
    "GuidanceProblem",
    "GuidanceWeights",
    "LMConfig",
    "SolverLog",
    "build_problem",
    "guide",
    "levenberg_marquardt",
    "wrist_observations",
]
