"""Shared test fixtures: locating ../shared and extracting real BVH samples from its archives."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# Tests run two at a time (pytest -n 2) on two cores: one thread each avoids oversubscription.
torch.set_num_threads(1)

# Archive -> members to extract. Members are picked early in each archive's order
# (`tar -tJf`), so streaming extraction stops after a few megabytes; the CMU
# archive is small, and 002_01 is its one clip with the other hierarchy (an
# extra `RL_BoneRoot` root).
BVH_SAMPLE_MEMBERS: dict[str, tuple[str, ...]] = {
    "bandai-namco-motion-1.tar.xz": (
        "Bandai-Namco-Research-Motiondataset-1/data/dataset-1_bye_feminine_001.bvh",
        "Bandai-Namco-Research-Motiondataset-1/data/dataset-1_walk_normal_001.bvh",
    ),
    "bandai-namco-motion-2.tar.xz": (
        "Bandai-Namco-Research-Motiondataset-2/data/dataset-2_run_feminine_021.bvh",
        "Bandai-Namco-Research-Motiondataset-2/data/dataset-2_walk_active_024.bvh",
    ),
    "cmu-mocap-subset.tar.xz": (
        "cmu-dev/subjects/005/005_19.bvh",
        "cmu-dev/subjects/005/005_15.bvh",
        "cmu-dev/subjects/002/002_01.bvh",
    ),
    "cmu-daz-subjects-10-14.tar.xz": (
        "cmu_daz_subjects10-14/11/11_01.bvh",
        "cmu_daz_subjects10-14/13/13_41.bvh",
    ),
    "reactidle-idle.tar.xz": ("reactidle/genuine/003_genuine.bvh",),
}


def shared_root() -> Path:
    """The project's `shared/` folder: `$EGOALLO_SHARED`, else `../shared` beside the repo."""
    override = os.environ.get("EGOALLO_SHARED")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session", autouse=True)
def user_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Caches (hand detections) go to a private `$XDG_CACHE_HOME` during the tests, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("xdg_cache")
        patch.setenv("XDG_CACHE_HOME", str(path))
        yield path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    root = shared_root()
    if not root.is_dir():
        pytest.skip(f"shared data folder not found at {root} (set EGOALLO_SHARED to override)")
    return root


@pytest.fixture(scope="session")
def bvh_samples(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Extract `BVH_SAMPLE_MEMBERS`; returns file stem (e.g. `005_19`) -> extracted path."""
    out_dir = tmp_path_factory.mktemp("bvh_samples")
    samples: dict[str, Path] = {}
    for archive_name, members in BVH_SAMPLE_MEMBERS.items():
        archive = shared_dir / "datasets" / archive_name
        if not archive.is_file():
            pytest.skip(f"dataset archive not found: {archive}")
        wanted = set(members)
        with tarfile.open(archive, mode="r|xz") as tar:
            for member in tar:
                if member.name not in wanted:
                    continue
                handle = tar.extractfile(member)
                assert handle is not None, f"{archive}: {member.name} is not a regular file"
                path = out_dir / Path(member.name).name
                path.write_bytes(handle.read())
                samples[path.stem] = path
                wanted.discard(member.name)
                if not wanted:
                    break
        assert not wanted, f"{archive}: members not found: {sorted(wanted)}"
    return samples


@pytest.fixture(scope="session")
def tiny_dataset(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `dataset.h5` from the first 3 clips of Bandai Namco 1 and CMU (train, val and test clips)."""
    from egoallo.body import BodyModel
    from egoallo.data.dataset_build import build_dataset

    out = tmp_path_factory.mktemp("tiny_dataset")
    build_dataset(out, model=BodyModel.load_default(), sources=("bandai1", "cmu"), limit_per_source=3, workers=0,
                  progress=False, shared_dir=shared_dir)
    return out / "dataset.h5"


VRS_NAME = "aea_recording_rgb8frames.vrs"
"""The real 8-frame Aria recording in ../shared/aria."""


@pytest.fixture(scope="module")
def vrs(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the real 8-frame VRS (its own cache key); reading it needs the aria extra."""
    pytest.importorskip("projectaria_tools", reason="reads a VRS (pip install 'egoallo[aria]')")
    path = tmp_path_factory.mktemp("vrs") / VRS_NAME
    shutil.copyfile(shared_dir / "aria" / VRS_NAME, path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight checkpoint of this project's format: inference runs end to end in seconds."""
    from egoallo.prior.checkpoint import save_project_checkpoint
    from egoallo.prior.network import PRESETS, EgoDenoiser

    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["default"], d_latent=32, d_feedforward=64, d_noise_emb=32, encoder_layers=1, decoder_layers=1)
    directory = tmp_path_factory.mktemp("ckpt")
    save_project_checkpoint(directory, EgoDenoiser(config))
    return directory
