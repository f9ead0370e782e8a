"""The floor from how the head moves while walking, for recordings without a point cloud.

While a person walks, the head rises and falls once per step like the top of
an inverted pendulum (the stance leg). For a leg of length L swinging through
a step of length s, the rise is about s² / (8 L) (the compass gait), so
L ≈ s² / (8 A) with A the amplitude of the vertical bob, and both s (speed /
step frequency) and A are measured from the head alone. Real gait bends the
knee and rolls over the foot, so the constants are fitted on motion capture
(`GaitHeightModel`, `tools/fit_gait_height.py`): the log of the head's
height above the floor at the top of its bob is linear in log step length and
log bob amplitude. Both grow in proportion to the body
whether a tall person walks like a short one scaled up (the body-shape
augmentation) or at the same Froude number (real people), so the fit carries
over.

Windows of `WINDOW_S` seconds, every `HOP_S`, count as walking when the head
moves steadily at 0.5-2.2 m/s and its vertical motion has a clear step
frequency in 1.2-3.0 Hz. The recording's floor is the median over walking
windows of each window's top head height minus its predicted height above
the floor; with fewer than `MIN_WINDOWS` of them there is no estimate.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ..files import write_bytes_atomic
from .points import FloorEstimate, floor_from_trajectory

GAIT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "gait_height.json"
"""The shipped gait floor model (see its `provenance`)."""

WINDOW_S = 4.0
HOP_S = 1.0
SPEED_RANGE_M_S = (0.5, 2.2)
MAX_SPEED_VARIATION = 0.25
"""Walking is steady: the standard deviation of the speed over its mean, at most this."""
STEP_HZ_RANGE = (1.2, 3.0)
MIN_PEAK_SHARE = 0.25
"""The step frequency's spectral peak carries at least this share of the 0.5-5 Hz vertical power."""
MIN_WINDOWS = 2


@dataclasses.dataclass(frozen=True)
class GaitWindow:
    """One walking window's measurements."""

    start: int
    speed_m_s: float
    step_hz: float
    bob_amplitude_m: float
    """Amplitude of the vertical head motion at the step frequency."""
    top_height_m: float
    """95th percentile of the head height in the window (the head at mid-stance)."""

    @property
    def step_length_m(self) -> float:
        return self.speed_m_s / self.step_hz


def gait_windows(
    positions: np.ndarray, fps: float, window_s: float = WINDOW_S, hop_s: float = HOP_S,
    speed_range: tuple[float, float] = SPEED_RANGE_M_S,
) -> list[GaitWindow]:
    """The walking windows (`window_s` long, every `hop_s`) of head positions `(T, 3)` (z up, metres) sampled at
    `fps`."""
    positions = np.asarray(positions, dtype=np.float64)
    n = int(round(window_s * fps))
    hop = max(1, int(round(hop_s * fps)))
    out = []
    for start in range(0, positions.shape[0] - n + 1, hop):
        window = gait_window(positions[start : start + n], fps, start, speed_range)
        if window is not None:
            out.append(window)
    return out


def gait_window(
    positions: np.ndarray, fps: float, start: int = 0, speed_range: tuple[float, float] = SPEED_RANGE_M_S
) -> GaitWindow | None:
    """Measurements of one window of head positions `(N, 3)`, or None if it is not steady walking at a speed in
    `speed_range` (m/s)."""
    if not np.isfinite(positions).all() or positions.shape[0] < 8:
        return None
    velocity = np.diff(positions[:, :2], axis=0) * fps
    kernel = np.ones(max(1, int(round(0.5 * fps)))) / max(1, int(round(0.5 * fps)))
    speed = np.convolve(np.linalg.norm(velocity, axis=1), kernel, mode="valid")  # over half a second: no step ripple
    mean_speed = float(speed.mean())
    if not speed_range[0] <= mean_speed <= speed_range[1] or speed.std() > MAX_SPEED_VARIATION * mean_speed:
        return None
    z = positions[:, 2]
    t = np.arange(z.shape[0])
    z = z - np.polyval(np.polyfit(t, z, 1), t)
    spectrum = np.fft.rfft(z * np.hanning(z.shape[0]))
    freqs = np.fft.rfftfreq(z.shape[0], 1.0 / fps)
    power = np.abs(spectrum) ** 2
    band = (freqs >= STEP_HZ_RANGE[0]) & (freqs <= STEP_HZ_RANGE[1])
    if not band.any():
        return None
    peak = int(np.flatnonzero(band)[np.argmax(power[band])])
    near = np.abs(np.arange(power.shape[0]) - peak) <= 1
    total = power[(freqs >= 0.5) & (freqs <= 5.0)].sum()
    if total <= 0 or power[near].sum() < MIN_PEAK_SHARE * total:
        return None
    weights = power[near]
    step_hz = float((freqs[near] * weights).sum() / weights.sum())
    # The amplitude of the step-frequency component: band-pass around the peak, RMS times sqrt(2).
    keep = (freqs >= step_hz / 1.4) & (freqs <= step_hz * 1.4)
    bob = np.fft.irfft(np.where(keep, np.fft.rfft(z), 0.0), n=z.shape[0])
    amplitude = float(np.sqrt(2.0) * np.sqrt(np.mean(bob**2)))
    if amplitude <= 1e-4:
        return None
    return GaitWindow(start, mean_speed, step_hz, amplitude, float(np.percentile(positions[:, 2], 95)))


@dataclasses.dataclass(frozen=True)
class GaitHeightModel:
    """log(head height above the floor at the top of the bob) = intercept + step_coef log(step length)
    + bob_coef log(bob amplitude), per walking window."""

    intercept: float
    step_coef: float
    bob_coef: float
    residual_std: float
    """Standard deviation of the fit's residual in log height, per window (training data)."""
    provenance: str = ""

    def head_height(self, window: GaitWindow) -> float:
        """Predicted height (m) of the window's top head height above the floor."""
        log = self.intercept + self.step_coef * np.log(window.step_length_m) + self.bob_coef * np.log(window.bob_amplitude_m)
        return float(np.exp(log))

    def floor_z(self, windows: list[GaitWindow]) -> float | None:
        """The floor's height: median over windows of top head height minus predicted height above the floor;
        None with fewer than `MIN_WINDOWS` windows."""
        if len(windows) < MIN_WINDOWS:
            return None
        return float(np.median([w.top_height_m - self.head_height(w) for w in windows]))

    @staticmethod
    def fit(windows: list[GaitWindow], floor_z: np.ndarray, provenance: str = "") -> GaitHeightModel:
        """Least squares on walking windows and the true floor heights `(N,)` under them."""
        X = np.stack([np.ones(len(windows)), [np.log(w.step_length_m) for w in windows],
                      [np.log(w.bob_amplitude_m) for w in windows]], axis=1)
        y = np.log(np.array([w.top_height_m for w in windows]) - np.asarray(floor_z, dtype=np.float64))
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        residual = y - X @ coef
        return GaitHeightModel(float(coef[0]), float(coef[1]), float(coef[2]), float(residual.std()), provenance)

    def save(self, path: str | Path) -> None:
        write_bytes_atomic(path, (json.dumps(dataclasses.asdict(self), indent=2) + "\n").encode())

    @staticmethod
    def load(path: str | Path) -> GaitHeightModel:
        return GaitHeightModel(**json.loads(Path(path).read_text()))


def floor_without_points(
    T_world_cpf: np.ndarray, fps: float, standing_eye_height: float, model: GaitHeightModel | None = None
) -> FloorEstimate:
    """The floor under a head trajectory `(T, 4, 4)` (z up) without a point cloud.

    From the walking windows with the gait model (`model`, default the shipped
    one) when there are at least `MIN_WINDOWS` of them (method `"gait"`),
    else the trajectory rule: the 95th percentile head height minus
    `standing_eye_height` (method `"trajectory"`).
    """
    positions = np.asarray(T_world_cpf, dtype=np.float64)[:, :3, 3]
    if model is None and GAIT_MODEL.is_file():
        model = GaitHeightModel.load(GAIT_MODEL)
    if model is not None:
        windows = gait_windows(positions, fps)
        z = model.floor_z(windows)
        if z is not None:
            return FloorEstimate(z, len(windows), "gait")
    return floor_from_trajectory(positions[:, 2], standing_eye_height)
