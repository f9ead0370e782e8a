"""EgoAllo: full-body pose, height and hands from egocentric SLAM trajectories."""

__version__ = "0.1.0"
