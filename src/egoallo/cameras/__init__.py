"""The one camera model of the package: projection (pinhole, Aria FISHEYE624), image size, validity circle and
pose on the head. Readers build it (`egoallo.inputs.calibration` from Aria calibrations,
`egoallo.inputs.camera_json` from a user's JSON, the hands `.npz` through `CameraModel.from_arrays`);
hand detection, hand guidance and the synthetic benchmarks use it. It knows no file format of its own but the
hands `.npz` keys, and needs no torch until it projects.
"""

from .model import CAMERA_ARRAY_KEYS, MIN_DEPTH_M, NUM_PARAMS, CameraError, CameraKind, CameraModel, as_tensor

__all__ = ["CAMERA_ARRAY_KEYS", "MIN_DEPTH_M", "NUM_PARAMS", "CameraError", "CameraKind", "CameraModel", "as_tensor"]
