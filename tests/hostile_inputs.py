"""Small valid inputs that the fuzz suite and the hostile-case table damage."""

from __future__ import annotations

import numpy as np
import torch

from egoallo.body import BodyModel
from egoallo.geometry import se3, so3
from egoallo.result import InferenceResult


def walk_poses(T: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(T,) seconds and (T, 7) `tx ty tz qx qy qz qw` of a head walking along x at 1.6 m, upright (CPF +y up)."""
    t = np.arange(T) / 30.0
    q = np.tile([0.5, 0.5, 0.5, 0.5], (T, 1))  # CPF +y along world +z, +z along world +x
    return t, np.c_[0.8 * t, 0.02 * np.sin(t), np.full(T, 1.6), q]


def tum_text() -> str:
    t, pose = walk_poses()
    return "".join(f"{s:.6f} " + " ".join(f"{v:.6f}" for v in row) + "\n" for s, row in zip(t, pose))


def mps_text() -> str:
    t, pose = walk_poses()
    header = ("graph_uid,tracking_timestamp_us,tx_world_device,ty_world_device,tz_world_device,qx_world_device,"
              "qy_world_device,qz_world_device,qw_world_device,gravity_x_world,gravity_y_world,gravity_z_world")
    rows = [f"g,{round(s * 1e6)}," + ",".join(f"{v:.6f}" for v in row) + ",0,0,-9.81" for s, row in zip(t, pose)]
    return "\n".join([header, *rows]) + "\n"


def small_result(body: BodyModel) -> InferenceResult:
    """A valid 1-sample, 6-frame result in a z-up world."""
    g = torch.Generator().manual_seed(0)
    S, T = 1, 6
    betas = torch.randn(S, 16, generator=g)
    local = so3.exp(0.3 * torch.randn(S, T, 51, 3, generator=g))
    T_world_root = se3.exp(torch.cumsum(0.05 * torch.randn(S, T, 6, generator=g), dim=1)).double()
    posed = body.with_shape(betas[:, None]).with_pose(T_world_root.float(), local)
    return InferenceResult(
        timestamps_ns=np.arange(T) * 33_333_333, T_world_cpf=posed.T_world_cpf[0].double().numpy(),
        joints_world=posed.joints_world.double().numpy(), T_world_root=T_world_root.numpy(),
        local_rotations=local.numpy(), betas=betas.numpy(), contacts=np.zeros((S, T, 21), np.float32),
        stature_m=body.with_shape(betas).stature.numpy(), floor_z=0.0, T_input_zup=np.eye(4), fps=30.0,
        metadata={"segments": []},
    )


WRIST_HEADER = ("tracking_timestamp_us,left_tracking_confidence,tx_left_wrist_device,ty_left_wrist_device,"
                "tz_left_wrist_device,tx_left_palm_device,ty_left_palm_device,tz_left_palm_device,"
                "right_tracking_confidence,tx_right_wrist_device,ty_right_wrist_device,tz_right_wrist_device,"
                "tx_right_palm_device,ty_right_palm_device,tz_right_palm_device")


def wrist_text() -> str:
    rows = [f"{1000 + 33333 * i},0.9,0.2,-0.3,0.3,0.22,-0.32,0.38,0.8,-0.2,-0.3,0.3,-0.22,-0.32,0.38" for i in range(20)]
    return "\n".join([WRIST_HEADER, *rows]) + "\n"
