"""Live mode: body motion from a head-pose stream, one frame at a time (docs/live.md)."""

from .estimator import LiveConfig, LiveEstimator, LiveFrame, live_sampling
from .stream import FrameClock, StreamLimits

__all__ = ["FrameClock", "LiveConfig", "LiveEstimator", "LiveFrame", "StreamLimits", "live_sampling"]
