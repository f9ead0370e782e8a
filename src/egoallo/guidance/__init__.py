"""Guidance: Levenberg–Marquardt refinement of sampled motion (feet, Aria wrist tracking, hand keypoints).

guided, log = guide(body, state, T_world_cpf, mode={"feet"}, floor_z=0.0)
"""

from .costs import (
    MODES,
    GuidanceLog,
    GuidanceProblem,
    GuidanceWeights,
    build_problem,
    guide,
    wrist_observations,
)
from .solver import LMConfig, SolverLog, levenberg_marquardt

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
