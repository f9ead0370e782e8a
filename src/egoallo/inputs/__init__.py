"""Inputs: head trajectories (Aria MPS, TUM, npz) and Aria device calibration."""

from egoallo.inputs.calibration import (
    DEFAULT_ARIA_T_DEVICE_CPF,
    AriaCalibration,
    CalibrationError,
    load_calibration,
    load_rgb_camera,
    load_T_device_cpf,
)
from egoallo.inputs.trajectory import (
    HeadTrajectory,
    ReadOptions,
    TrajectoryError,
    read_trajectory,
    read_trajectory_segments,
)

__all__ = [
    "DEFAULT_ARIA_T_DEVICE_CPF",
    "AriaCalibration",
    "CalibrationError",
    "HeadTrajectory",
    "ReadOptions",
    "TrajectoryError",
    "load_T_device_cpf",
    "load_calibration",
    "load_rgb_camera",
    "read_trajectory",
    "read_trajectory_segments",
]
