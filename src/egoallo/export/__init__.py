"""Exports of a result to other tools' formats: BVH, AMASS-style npz."""

from .motion_files import result_motion, write_amass_npz, write_bvh

__all__ = ["result_motion", "write_amass_npz", "write_bvh"]
