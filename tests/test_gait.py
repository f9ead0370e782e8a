"""The floor from walking: gait measurements on synthetic head tracks, the model's fit and its fallback."""

import numpy as np
import pytest

from egoallo.inputs.gait import GaitHeightModel, floor_without_points, gait_window, gait_windows


def walking_head(seconds: float = 12.0, fps: float = 30.0, speed: float = 1.3, step_hz: float = 1.8,
                 bob: float = 0.02, height: float = 1.6, floor: float = 0.0) -> np.ndarray:
    """Head poses `(T, 4, 4)`: straight walk along x with a vertical bob at the step frequency."""
    t = np.arange(int(seconds * fps)) / fps
    T = np.tile(np.eye(4), (len(t), 1, 1))
    T[:, 0, 3] = speed * t
    T[:, 2, 3] = floor + height - bob + bob * np.cos(2 * np.pi * step_hz * t)
    return T


def test_gait_window_measures_speed_step_and_bob():
    head = walking_head()[:, :3, 3]
    window = gait_window(head[:120], 30.0)
    assert window.speed_m_s == pytest.approx(1.3, rel=0.02)
    assert window.step_hz == pytest.approx(1.8, rel=0.05)
    assert window.bob_amplitude_m == pytest.approx(0.02, rel=0.15)
    assert window.step_length_m == pytest.approx(1.3 / 1.8, rel=0.06)
    assert window.top_height_m == pytest.approx(1.6, abs=0.003)
    assert len(gait_windows(head, 30.0)) == 9  # 4 s windows every second over 12 s


def test_standing_still_or_jitter_is_not_walking():
    still = walking_head(speed=0.0)[:, :3, 3]
    assert gait_window(still[:120], 30.0) is None
    rng = np.random.default_rng(0)
    jitter = walking_head(speed=0.0, bob=0.0)[:, :3, 3] + rng.normal(0, 0.005, (len(still), 3))  # SLAM noise
    assert not gait_windows(jitter, 30.0)


def test_fit_recovers_a_power_law_and_the_floor_follows():
    windows, floors = [], []
    for k, leg in enumerate(np.linspace(0.8, 1.05, 12)):
        # Taller walkers: longer steps and a larger bob, the head higher above the floor (eye = 1.75 leg).
        head = walking_head(speed=1.6 * leg, step_hz=1.8, bob=0.025 * leg, height=1.75 * leg, floor=0.1 * k)
        found = gait_windows(head[:, :3, 3], 30.0)
        windows += found
        floors += [0.1 * k] * len(found)
    model = GaitHeightModel.fit(windows, np.array(floors))
    assert model.residual_std < 0.01
    test = walking_head(speed=1.6 * 0.9, bob=0.025 * 0.9, height=1.75 * 0.9, floor=-0.3)
    estimate = floor_without_points(test, 30.0, standing_eye_height=1.5, model=model)
    assert estimate.method == "gait" and estimate.z == pytest.approx(-0.3, abs=0.01)
    standing = walking_head(speed=0.0, height=1.7)
    fallback = floor_without_points(standing, 30.0, standing_eye_height=1.5, model=model)
    assert fallback.method == "trajectory" and fallback.z == pytest.approx(0.2, abs=0.01)


def test_model_round_trips_through_json(tmp_path):
    model = GaitHeightModel(0.5, 0.7, -0.3, 0.02, "test")
    model.save(tmp_path / "m.json")
    assert GaitHeightModel.load(tmp_path / "m.json") == model
