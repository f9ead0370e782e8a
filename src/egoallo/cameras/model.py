"""`CameraModel`: intrinsics, image size, validity circle and pose in the central pupil frame (CPF).

Pixel centres are at integer coordinates (projectaria-tools' and OpenCV's convention), so an image of width W
covers `-0.5 <= u < W - 0.5`. Values are stored as read-only float64 numpy arrays; projections take and return
torch tensors (batched, differentiable), in the dtype and device of the points.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import UserError
from ..geometry.rigid import NotRigidError, as_rigid_transform

if TYPE_CHECKING:
    from torch import Tensor

CameraKind = Literal["pinhole", "fisheye624"]
NUM_PARAMS: dict[str, tuple[int, ...]] = {"pinhole": (4,), "fisheye624": (15, 16)}
MIN_DEPTH_M = 1e-3
"""Points nearer to the camera plane than this are not in front of it."""
CAMERA_ARRAY_KEYS = ("camera_model", "camera_params", "image_size", "T_cpf_camera")
"""The keys under which a camera is stored in an `.npz` (hands files); `T_device_camera` is optional."""


class CameraError(UserError, ValueError):
    """An unusable camera model: the message says which value is wrong."""


@dataclasses.dataclass(frozen=True, eq=False)
class CameraModel:
    """A calibrated camera on the head (checked on creation; arrays given as numpy or torch are copied)."""

    kind: CameraKind
    params: np.ndarray
    """(4,) pinhole `[fx, fy, cx, cy]`; fisheye624 (15,) `[f, cx, cy, k0..k5, p0, p1, s0..s3]` or (16,) `[fx, fy, ...]`."""
    width: int
    height: int
    T_cpf_camera: np.ndarray
    """(4, 4) the camera's pose in the CPF (camera axes: x right, y down, z forward in the image)."""
    valid_radius: float | None = None
    """Pixels from the principal point inside which the calibration holds (Aria's circular mask); None: all."""
    T_device_camera: np.ndarray | None = None
    """(4, 4) the camera's pose in the Aria device frame, when it came from an Aria calibration."""

    def __post_init__(self) -> None:
        for name in ("params", "T_cpf_camera", "T_device_camera"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _read_only_float64(value, name))
        _check(self)

    @staticmethod
    def pinhole(fx: float, fy: float, cx: float, cy: float, width: int, height: int, T_cpf_camera: Any) -> CameraModel:
        """A pinhole camera (no distortion)."""
        return CameraModel("pinhole", np.array([fx, fy, cx, cy], dtype=np.float64), width, height, T_cpf_camera)

    @property
    def image_size(self) -> tuple[int, int]:
        """`(width, height)` in pixels."""
        return self.width, self.height

    @property
    def focal_lengths(self) -> np.ndarray:
        """(2,) `(fx, fy)` in pixels."""
        return np.broadcast_to(self.params[self._focal_slice()], (2,))

    @property
    def principal_point(self) -> np.ndarray:
        """(2,) `(cx, cy)` in pixels."""
        return self.params[self._centre_slice()]

    def project(self, points_camera: Tensor) -> Tensor:
        """(..., 2) pixels of `points_camera (..., 3)`; finite for any point off the camera centre."""
        return self._math().project(points_camera, as_tensor(self.params, points_camera))

    def project_with_jacobian(self, points_camera: Tensor) -> tuple[Tensor, Tensor]:
        """Pixels (..., 2) and the analytic `d pixels / d point` (..., 2, 3)."""
        return self._math().project_with_jacobian(points_camera, as_tensor(self.params, points_camera))

    def in_front(self, points_camera: Tensor) -> Tensor:
        """(...) bool: depth along the optical axis above `MIN_DEPTH_M`."""
        return points_camera[..., 2] > MIN_DEPTH_M

    def in_image(self, pixels: Tensor) -> Tensor:
        """(...) bool: `pixels (..., 2)` inside the image (and its valid circle, when set)."""
        u, v = pixels[..., 0], pixels[..., 1]
        inside = (u >= -0.5) & (u < self.width - 0.5) & (v >= -0.5) & (v < self.height - 0.5)
        if self.valid_radius is not None:
            centre = as_tensor(self.principal_point, pixels)
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
        params = self.params.copy()
        params[self._focal_slice()] *= scale
        params[self._centre_slice()] = (params[self._centre_slice()] + 0.5) * scale - 0.5
        radius = None if self.valid_radius is None else self.valid_radius * scale
        return dataclasses.replace(self, params=params, width=width, height=height, valid_radius=radius)

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The camera under `CAMERA_ARRAY_KEYS` (and `T_device_camera` when known), for an `.npz`."""
        arrays = {
            "camera_model": np.array(self.kind),
            "camera_params": self.params,
            "image_size": np.asarray(self.image_size, dtype=np.int64),
            "T_cpf_camera": self.T_cpf_camera,
        }
        if self.T_device_camera is not None:
            arrays["T_device_camera"] = self.T_device_camera
        return arrays

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray]) -> CameraModel:
        """The camera stored under `CAMERA_ARRAY_KEYS` (all present: the caller checks); a `CameraError` naming
        the first unusable value."""
        size = np.asarray(arrays["image_size"])
        if size.shape != (2,) or size.dtype.kind not in "iuf" or not (np.isfinite(size) & (size == np.round(size))).all():
            raise CameraError(f"image_size must be 2 whole numbers (width, height), got {size.tolist()!r:.60}")
        return CameraModel(
            kind=str(arrays["camera_model"]),  # type: ignore[arg-type]
            params=arrays["camera_params"],
            width=int(size[0]),
            height=int(size[1]),
            T_cpf_camera=arrays["T_cpf_camera"],
            T_device_camera=arrays.get("T_device_camera"),
        )

    def _focal_slice(self) -> slice:
        return slice(0, 1) if self.params.shape[-1] == 15 else slice(0, 2)

    def _centre_slice(self) -> slice:
        return slice(1, 3) if self.params.shape[-1] == 15 else slice(2, 4)

    def _math(self):
        if self.kind == "pinhole":
            from . import _pinhole

            return _pinhole
        from . import _fisheye624

        return _fisheye624


def as_tensor(array: np.ndarray, like: Tensor) -> Tensor:
    """`array` (e.g. `T_cpf_camera`) as a tensor of `like`'s dtype and device (a copy)."""
    import torch

    return torch.tensor(array, dtype=like.dtype, device=like.device)


def _read_only_float64(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise CameraError(f"camera {name}: not an array of numbers ({error})") from None
    array.setflags(write=False)
    return array


def _check(camera: CameraModel) -> None:
    """`CameraError` naming the first unusable value."""
    if camera.kind not in NUM_PARAMS:
        raise CameraError(f"camera kind {camera.kind!r} is unknown; expected one of {sorted(NUM_PARAMS)}")
    params = camera.params
    if params.ndim != 1 or params.shape[0] not in NUM_PARAMS[camera.kind]:
        expected = " or ".join(str(n) for n in NUM_PARAMS[camera.kind])
        raise CameraError(f"{camera.kind} camera: expected {expected} parameters, got shape {tuple(params.shape)}")
    if not np.isfinite(params).all():
        raise CameraError(f"{camera.kind} camera: parameters contain NaN or infinite values: {params.tolist()}")
    if not (camera.focal_lengths > 0).all():
        raise CameraError(f"{camera.kind} camera: focal length must be positive, got {camera.focal_lengths.tolist()}")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in camera.image_size):
        raise CameraError(f"camera image size must be positive integers, got {camera.width}x{camera.height}")
    if camera.valid_radius is not None and not (np.isfinite(camera.valid_radius) and camera.valid_radius > 0):
        raise CameraError(f"camera valid radius must be positive, got {camera.valid_radius}")
    for name in ("T_cpf_camera", "T_device_camera"):
        if (T := getattr(camera, name)) is not None:
            try:
                as_rigid_transform(T, f"camera {name}")
            except NotRigidError as error:
                raise CameraError(str(error)) from None
