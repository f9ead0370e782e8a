"""Print how each conditioning changes under a world move (rotation about z + x/y translation) and a window shift.

    python scripts/conditioning_invariance.py

The paper's parameterisation (`ours`) must not change under either; the tests
(`tests/test_conditioning.py`) assert the same on other trajectories.
"""

import torch

from egoallo.geometry import se3, so3
from egoallo.prior.conditioning import COND_PARAMS, ConditioningConfig, compute_conditioning


def main() -> None:
    torch.manual_seed(0)
    T = 41
    tangent = torch.cumsum(0.05 * torch.randn(T, 6, dtype=torch.float64), dim=0)
    T_world_cpf = se3.exp(tangent)
    cpf_upright = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64)  # CPF +y along world +z
    T_world_cpf[:, :3, :3] = T_world_cpf[:, :3, :3] @ cpf_upright
    T_world_cpf[:, 2, 3] += 1.6
    move = se3.from_rotation_translation(so3.rot_z(torch.tensor(0.7, dtype=torch.float64)), torch.tensor([3.0, -2.0, 0.0], dtype=torch.float64))
    print("| conditioning | max change, world rotated 0.7 rad about z and moved (3, -2) m | max change, window starting 10 frames later |")
    print("|---|---|---|")
    for kind in COND_PARAMS:
        config = ConditioningConfig(kind=kind)
        full = compute_conditioning(T_world_cpf, config)
        moved = compute_conditioning(move @ T_world_cpf, config)
        shifted = compute_conditioning(T_world_cpf[10:], config)
        print(f"| {kind} | {float((full - moved).abs().max()):.2e} | {float((shifted - full[10:]).abs().max()):.2e} |")


if __name__ == "__main__":
    main()
