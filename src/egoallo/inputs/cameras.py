"""Camera models in torch, batched and differentiable: pinhole and Project Aria FISHEYE624.

A point `(x, y, z)` in the camera frame (+z along the optical axis) goes to pixels:

- `pinhole`, params `[fx, fy, cx, cy]`: `u = fx·x/z + cx`, `v = fy·y/z + cy`.
- `fisheye624`, params `[f, cx, cy, k0..k5, p0, p1, s0..s3]` (Aria's FisheyeRadTanThinPrism
  with one focal length, as projectaria-tools stores it; or 16 numbers starting `fx, fy`): with `r = |(x, y)|` and
  `θ = atan2(r, z)`, the distorted angle `θ_d = θ + Σ k_i θ^(2i+3)` gives `u_r = θ_d·(x, y)/r`;
  with `ρ² = |u_r|²`, tangential `(p0(2u_x² + ρ²) + 2p1·u_x·u_y, p1(2u_y² + ρ²) + 2p0·u_x·u_y)`
  and thin-prism `(s0ρ² + s1ρ⁴, s2ρ² + s3ρ⁴)` terms are added to `u_r`, then
  `pixel = (fx, fy)·u_d + (cx, cy)`.

Pixel centres are at integer coordinates (projectaria-tools' convention), so an image of
width W covers `-0.5 <= u < W - 0.5`. `tests/test_cameras.py` checks the fisheye against
projectaria-tools' own `CameraCalibration.project` on real Aria calibrations.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from egoallo.errors import UserError
from egoallo.inputs.calibration import RgbCamera, as_rigid_transform, load_rgb_camera

CameraKind = Literal["pinhole", "fisheye624"]
NUM_PARAMS: dict[str, tuple[int, ...]] = {"pinhole": (4,), "fisheye624": (15, 16)}
MIN_DEPTH_M = 1e-3
"""Points nearer to the camera plane than this are not in front of it."""


class CameraError(UserError, ValueError):
    """An unusable camera model: the message says which value is wrong."""


@dataclasses.dataclass(frozen=True, eq=False)
class CameraModel:
    """Intrinsics, image size and the camera's pose in the central pupil frame (checked on creation)."""

    kind: CameraKind
    params: Tensor
    """(4,) pinhole `[fx, fy, cx, cy]`; fisheye624 (15,) `[f, cx, cy, k0..k5, p0, p1, s0..s3]` or (16,) `[fx, fy, ...]`."""
    width: int
    height: int
    T_cpf_camera: Tensor
    """(4, 4) the camera's pose in the CPF (camera axes: x right, y down, z forward in the image)."""
    valid_radius: float | None = None
    """Pixels from the principal point inside which the calibration holds (Aria's circular mask); None: all."""

    def __post_init__(self) -> None:
        _check_camera(self)

    @property
    def focal_lengths(self) -> Tensor:
        """(2,) `(fx, fy)` in pixels."""
        return self.params[_focal_slice(self.params)].expand(2)

    @property
    def principal_point(self) -> Tensor:
        """(2,) `(cx, cy)` in pixels."""
        return self.params[_centre_slice(self.params)]

    def project(self, points_camera: Tensor) -> Tensor:
        """(..., 2) pixels of `points_camera (..., 3)`; finite for any point off the camera centre."""
        params = self.params.to(points_camera)
        if self.kind == "pinhole":
            return project_pinhole(points_camera, params)
        return project_fisheye624(points_camera, params)

    def project_with_jacobian(self, points_camera: Tensor) -> tuple[Tensor, Tensor]:
        """Pixels (..., 2) and the analytic `d pixels / d point` (..., 2, 3)."""
        params = self.params.to(points_camera)
        if self.kind == "pinhole":
            return pinhole_with_jacobian(points_camera, params)
        return fisheye624_with_jacobian(points_camera, params)

    def in_front(self, points_camera: Tensor) -> Tensor:
        """(...) bool: depth along the optical axis above `MIN_DEPTH_M`."""
        return points_camera[..., 2] > MIN_DEPTH_M

    def in_image(self, pixels: Tensor) -> Tensor:
        """(...) bool: `pixels (..., 2)` inside the image (and its valid circle, when set)."""
        u, v = pixels[..., 0], pixels[..., 1]
        inside = (u >= -0.5) & (u < self.width - 0.5) & (v >= -0.5) & (v < self.height - 0.5)
        if self.valid_radius is not None:
            centre = self.principal_point.to(pixels)
            inside &= (pixels - centre).norm(dim=-1) <= self.valid_radius
        return inside

    def visible(self, points_camera: Tensor) -> Tensor:
        """(...) bool: in front of the camera and projecting inside the image."""
        return self.in_front(points_camera) & self.in_image(self.project(points_camera))

    def rescaled(self, width: int, height: int) -> CameraModel:
        """The same camera for an image resized to `width x height` (same aspect ratio)."""
        scale = width / self.width
        if not np.isclose(height / self.height, scale, rtol=1e-3):
            raise CameraError(
                f"cannot rescale a {self.width}x{self.height} camera to {width}x{height}: the aspect ratio differs"
            )
        params = self.params.clone()
        params[_focal_slice(params)] *= scale
        params[_centre_slice(params)] = (params[_centre_slice(params)] + 0.5) * scale - 0.5
        radius = None if self.valid_radius is None else self.valid_radius * scale
        return dataclasses.replace(self, params=params, width=width, height=height, valid_radius=radius)

    @staticmethod
    def from_rgb_camera(camera: RgbCamera) -> CameraModel:
        """From the RGB camera of an Aria calibration (`egoallo.inputs.calibration`)."""
        T_cpf_camera = np.linalg.inv(as_rigid_transform(camera.T_device_cpf, "T_device_cpf")) @ camera.T_device_camera
        width, height = camera.image_size
        return CameraModel(
            kind=camera.model,
            params=torch.from_numpy(camera.params.copy()),
            width=width,
            height=height,
            T_cpf_camera=torch.from_numpy(T_cpf_camera),
            valid_radius=camera.valid_radius,
        )


def load_aria_rgb_camera(path: str | Path) -> CameraModel:
    """The RGB camera of an Aria `.vrs` recording or calibration `.json`/`.jsonl`."""
    return CameraModel.from_rgb_camera(load_rgb_camera(path))


def project_pinhole(points: Tensor, params: Tensor) -> Tensor:
    """(..., 2) pinhole pixels of `points (..., 3)`; `params (4,)` = `[fx, fy, cx, cy]`."""
    z = _away_from_zero(points[..., 2])
    return points[..., :2] / z[..., None] * params[:2] + params[2:4]


def pinhole_with_jacobian(points: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
    """Pinhole pixels (..., 2) of `points (..., 3)` and their Jacobian (..., 2, 3)."""
    z = _away_from_zero(points[..., 2])
    fx, fy = params[0] / z, params[1] / z
    zero = torch.zeros_like(z)
    J = torch.stack(
        [
            torch.stack([fx, zero, -fx * points[..., 0] / z], dim=-1),
            torch.stack([zero, fy, -fy * points[..., 1] / z], dim=-1),
        ],
        dim=-2,
    )
    return project_pinhole(points, params), J


def _horner(x: Tensor, coeffs: Tensor) -> Tensor:
    """`Σ coeffs[i]·x^i` for `x (...)`."""
    out = torch.zeros_like(x)
    for c in coeffs.flip(0):
        out = out * x + c
    return out


def _fisheye_angles(points: Tensor, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`r = |(x, y)|` (floored at 1e-12), `θ = atan2(r, z)` and `θ_d = θ + Σ k_i θ^(2i+3)`, each (...)."""
    r = points[..., :2].square().sum(dim=-1).clamp_min(1e-24).sqrt()
    theta = torch.atan2(r, points[..., 2])
    theta2 = theta.square()
    return r, theta, theta * (1.0 + theta2 * _horner(theta2, params[-12:-6]))


def _distort(ur: Tensor, params: Tensor) -> Tensor:
    """(..., 2) tangential and thin-prism distortion added to `ur (..., 2)`."""
    ux, uy = ur[..., 0], ur[..., 1]
    rho2 = ux.square() + uy.square()
    p0, p1, s0, s1, s2, s3 = params[-6:]
    dx = p0 * (2.0 * ux.square() + rho2) + 2.0 * p1 * ux * uy + s0 * rho2 + s1 * rho2.square()
    dy = p1 * (2.0 * uy.square() + rho2) + 2.0 * p0 * ux * uy + s2 * rho2 + s3 * rho2.square()
    return torch.stack([ux + dx, uy + dy], dim=-1)


def _distort_jacobian(ur: Tensor, params: Tensor) -> Tensor:
    """(..., 2, 2) `d _distort / d ur`."""
    ux, uy = ur[..., 0], ur[..., 1]
    rho2 = ux.square() + uy.square()
    p0, p1, s0, s1, s2, s3 = params[-6:]
    prism_x, prism_y = 2.0 * (s0 + 2.0 * s1 * rho2), 2.0 * (s2 + 2.0 * s3 * rho2)
    rows = (
        (1.0 + 6.0 * p0 * ux + 2.0 * p1 * uy + prism_x * ux, 2.0 * p0 * uy + 2.0 * p1 * ux + prism_x * uy),
        (2.0 * p1 * ux + 2.0 * p0 * uy + prism_y * ux, 1.0 + 6.0 * p1 * uy + 2.0 * p0 * ux + prism_y * uy),
    )
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def project_fisheye624(points: Tensor, params: Tensor) -> Tensor:
    """(..., 2) FISHEYE624 pixels of `points (..., 3)`; `params (15 | 16,)` as in the module docstring."""
    r, _, theta_d = _fisheye_angles(points, params)
    ur = points[..., :2] * (theta_d / r)[..., None]
    return _distort(ur, params) * params[_focal_slice(params)] + params[_centre_slice(params)]


def fisheye624_with_jacobian(points: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
    """FISHEYE624 pixels (..., 2) of `points (..., 3)` and their Jacobian (..., 2, 3)."""
    x, y, z = points.unbind(dim=-1)
    r, theta, theta_d = _fisheye_angles(points, params)
    k = params[-12:-6] * torch.arange(3, 15, 2, dtype=params.dtype)  # (2i + 3)·k_i
    dtheta_d = 1.0 + theta.square() * _horner(theta.square(), k)  # d θ_d / d θ
    s2 = r.square() + z.square()
    a = theta_d / r  # u_r = a·(x, y)
    radial = dtheta_d * z / (r.square() * s2) - theta_d / r.pow(3)  # (d a / d x) / x = (d a / d y) / y
    da = torch.stack([radial * x, radial * y, -dtheta_d / s2], dim=-1)  # (..., 3)
    xy = points[..., :2]
    d_ur = xy[..., :, None] * da[..., None, :]
    d_ur[..., 0, 0] += a
    d_ur[..., 1, 1] += a
    ur = xy * a[..., None]
    focal = params[_focal_slice(params)].expand(2)
    J = focal[:, None] * (_distort_jacobian(ur, params) @ d_ur)
    return _distort(ur, params) * focal + params[_centre_slice(params)], J


def _focal_slice(params: Tensor) -> slice:
    """Where the focal length(s) sit: `f` of 15 FISHEYE624 numbers, else `fx, fy`."""
    return slice(0, 1) if params.shape[-1] == 15 else slice(0, 2)


def _centre_slice(params: Tensor) -> slice:
    return slice(1, 3) if params.shape[-1] == 15 else slice(2, 4)


def _away_from_zero(z: Tensor, eps: float = 1e-9) -> Tensor:
    """`z` with magnitudes below `eps` replaced by `±eps` (pinhole division)."""
    return torch.where(z.abs() < eps, torch.where(z < 0, -eps, eps), z)


def _check_camera(camera: CameraModel) -> None:
    """`CameraError` naming the first unusable value."""
    if camera.kind not in NUM_PARAMS:
        raise CameraError(f"camera kind {camera.kind!r} is unknown; expected one of {sorted(NUM_PARAMS)}")
    params = camera.params
    if not isinstance(params, Tensor) or params.ndim != 1 or params.shape[0] not in NUM_PARAMS[camera.kind]:
        shape = tuple(params.shape) if isinstance(params, Tensor) else type(params).__name__
        expected = " or ".join(str(n) for n in NUM_PARAMS[camera.kind])
        raise CameraError(f"{camera.kind} camera: expected {expected} parameters, got shape {shape}")
    if not params.isfinite().all():
        raise CameraError(f"{camera.kind} camera: parameters contain NaN or infinite values: {params.tolist()}")
    if not (camera.focal_lengths > 0).all():
        raise CameraError(f"{camera.kind} camera: focal length must be positive, got {camera.focal_lengths.tolist()}")
    if camera.width <= 0 or camera.height <= 0:
        raise CameraError(f"camera image size must be positive, got {camera.width}x{camera.height}")
    if camera.valid_radius is not None and not (np.isfinite(camera.valid_radius) and camera.valid_radius > 0):
        raise CameraError(f"camera valid radius must be positive, got {camera.valid_radius}")
    try:
        as_rigid_transform(np.asarray(camera.T_cpf_camera, dtype=np.float64), "camera T_cpf_camera")
    except UserError as error:
        raise CameraError(str(error)) from None
