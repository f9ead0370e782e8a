"""Exports of a result to other tools' formats: BVH, AMASS-style npz, binary glTF."""

from .gltf import frame_times, write_glb
from .motion_files import result_motion, write_amass_npz, write_bvh

__all__ = ["frame_times", "result_motion", "write_amass_npz", "write_bvh", "write_glb"]
