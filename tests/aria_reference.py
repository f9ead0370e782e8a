"""projectaria-tools' own reading of the shared Aria files: the reference for egoallo's readers.

Tests that use it skip where projectaria-tools (the `aria` extra) is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def projectaria_device_calibration(path: Path, subtype: str = "DVT-S"):
    """projectaria-tools' `DeviceCalibration` of a `.vrs`, or of a calibration `.json`/`.jsonl` (first record).

    An MPS online calibration lacks the device subtype and origin that projectaria-tools needs:
    they are filled in (`subtype`, origin camera-slam-left).
    """
    pytest.importorskip("projectaria_tools", reason="compares with projectaria-tools (the aria extra)")
    from projectaria_tools.core import calibration, data_provider

    if path.suffix == ".vrs":
        return data_provider.create_vrs_data_provider(str(path)).get_device_calibration()
    record = json.loads(next(line for line in path.read_text().splitlines() if line.strip()))
    record.setdefault("DeviceClassInfo", {"BuildVersion": subtype, "DeviceClass": "Aria"})
    record.setdefault("OriginSpecification", {"ChildLabel": "camera-slam-left", "Type": "Custom"})
    return calibration.device_calibration_from_json_string(json.dumps(record))
