"""Motion-capture sources: where they live, what each clip is, and its split.

Sources and their clip ids:

- `bandai1`, `bandai2`: Bandai Namco Research Motion Datasets 1 and 2, BVH
  members `.../data/dataset-{1,2}_{content}_{style}_{NNN}.bvh`; clip id
  `bandai2/dataset-2_run_feminine_021`. Activity = content, style = style.
- `cmu`: CMU mocap subset, members `cmu-dev/subjects/{SSS}/{SSS}_{TT}.bvh`;
  clip id `cmu/005_01`; performer = subject (`"005"`); description from
  `cmu-dev/index.csv`; activity a coarse label derived from it.
- `cmu_daz`: CMU subjects 10-14 in the cgspeed "Daz-friendly" conversion,
  members `cmu_daz_subjects10-14/{SS}/{SS}_{TT}.bvh`; clip id `cmu_daz/13_01`;
  performer = subject (`"13"`); description and tags from the archive's
  `MANIFEST.tsv`; activity from the tags (`DAZ_ACTIVITIES`).
- `reactidle`: ReActIdle standing idle motion, members
  `reactidle/{acted,genuine}/{NNN}_{kind}.bvh`; clip id `reactidle/003_acted`;
  performer = file number (`"003"`), activity `idle`, style acted / genuine.
- `amass`: optional directory of AMASS `.npz` sequences; clip id
  `amass/<sub-dataset>/<path without .npz>`.

Splits (deterministic, no randomness):

- Bandai: the files carry no performer ids (all clips of a dataset share one
  retargeted skeleton), so whole **styles** are held out, the strongest
  separation the data allows. Bandai-1: val = {happy}, test = {proud, tired}.
  Bandai-2: val = {youthful}, test = {feminine}. Other styles: train.
- CMU: by **subject**. train = {1, 2}, val = {3}, test = {5}; subjects not
  listed (a fuller CMU copy) go to train.
- CMU Daz: by **subject**, so that every activity with two or more subjects
  has one on each side: walk (10, 12), soccer (10, 11), and sitting, stairs,
  ladder, drinking, laughing, reaching (13, 14). train = {11, 12, 14},
  val = {10}, test = {13}. The rare activities exist for two subjects only
  (13 held out for test, 14 in train), so validation could not see them: one
  clip of subject 14 per rare activity goes to val instead
  (`DAZ_VALIDATION_CLIPS`; the others stay in train), an activity-balanced
  validation that is clip-held-out, not performer-held-out, for those
  activities (docs/dataset.md). The test split is untouched.
- ReActIdle: by **performer** (acted and genuine idle each have performers
  on every side): val = {007}, test = {008, 012}, the other 13 train.
- AMASS: by sub-dataset (first path component under the AMASS directory), the
  EgoAllo paper's lists in `AMASS_SPLITS` (newer AMASS release names are
  accepted as aliases). Sequences of unlisted sub-datasets get no split and are
  not built (the build logs them as excluded).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SHARED_ENV_VAR = "EGOALLO_SHARED"
ARCHIVE_SOURCES = ("bandai1", "bandai2", "cmu", "cmu_daz", "reactidle")
ARCHIVES = {
    "bandai1": "datasets/bandai-namco-motion-1.tar.xz",
    "bandai2": "datasets/bandai-namco-motion-2.tar.xz",
    "cmu": "datasets/cmu-mocap-subset.tar.xz",
    "cmu_daz": "datasets/cmu-daz-subjects-10-14.tar.xz",
    "reactidle": "datasets/reactidle-idle.tar.xz",
}
SPLITS = ("train", "val", "test")

BANDAI_STYLE_SPLITS = {
    "bandai1": {"val": ("happy",), "test": ("proud", "tired")},
    "bandai2": {"val": ("youthful",), "test": ("feminine",)},
}
"""Held-out styles per Bandai dataset; every other style is train."""
CMU_SUBJECT_SPLITS = {"train": (1, 2), "val": (3,), "test": (5,)}
"""CMU subjects per split; unlisted subjects are train."""
DAZ_SUBJECT_SPLITS = {"train": (11, 12, 14), "val": (10,), "test": (13,)}
"""CMU Daz subjects per split; unlisted subjects are train."""
DAZ_VALIDATION_CLIPS = {
    "14_28": "sit",  # high stool, as the held-out 13_01; 14_27 (high stool) and 14_29-32 (stepstool) stay in train
    "14_23": "stairs",
    "14_35": "ladder",
    "14_37": "drink",
    "14_19": "laugh",
    "14_08": "reach",
}
"""Clips of a training subject moved to val: one per activity that only subjects 13 (test) and 14 (train) have."""
REACTIDLE_PERFORMER_SPLITS = {"val": (7,), "test": (8, 12)}
"""ReActIdle performers held out; every other performer is train."""
DAZ_ACTIVITIES = {
    "sit/stand-up": "sit",
    "stairs": "stairs",
    "ladder": "ladder",
    "drink/object": "drink",
    "gesture/laugh": "laugh",
    "gesture": "gesture",
    "jump,reach/tiptoe": "reach",
    "jump": "jump",
    "locomotion": "walk",
    "sport": "soccer",
    "boxing": "boxing",
    "household": "wash",
}
"""CMU Daz manifest tags -> activity; other tag lists (the exercise clips) are `exercise`."""
AMASS_SPLITS = {
    "train": (
        "ACCAD", "BioMotionLab_NTroje", "BMLhandball", "BMLmovi", "CMU", "DanceDB", "DFaust_67",
        "EKUT", "Eyes_Japan_Dataset", "KIT", "MPI_Limits", "TCD_handMocap", "TotalCapture",
    ),
    "val": ("HumanEva", "MPI_HDM05", "SFU", "MPI_mosh"),
    "test": ("Transitions_mocap", "SSM_synced"),
}
"""AMASS sub-datasets per split, as listed by the EgoAllo paper."""
AMASS_ALIASES = {
    "BMLrub": "BioMotionLab_NTroje",
    "DFaust": "DFaust_67",
    "EyesJapanDataset": "Eyes_Japan_Dataset",
    "PosePrior": "MPI_Limits",
    "TCDHands": "TCD_handMocap",
    "HDM05": "MPI_HDM05",
    "MoSh": "MPI_mosh",
    "Transitions": "Transitions_mocap",
    "SSM": "SSM_synced",
}
"""Sub-dataset names of the newer AMASS release -> the paper's names."""

_BANDAI_MEMBER = re.compile(r"Bandai-Namco-Research-Motiondataset-([12])/data/(dataset-[12]_([^_/]+)_([^_/]+)_(\d+))\.bvh$")
_CMU_MEMBER = re.compile(r"cmu-dev/subjects/(\d+)/((\d+)_(\d+))\.bvh$")
_CMU_INDEX = "cmu-dev/index.csv"
_DAZ_MEMBER = re.compile(r"cmu_daz_subjects10-14/(\d+)/((\d+)_(\d+))\.bvh$")
_DAZ_MANIFEST = "cmu_daz_subjects10-14/MANIFEST.tsv"
_REACTIDLE_MEMBER = re.compile(r"reactidle/(acted|genuine)/((\d+)_(acted|genuine))\.bvh$")
_CMU_ACTIVITIES = (
    ("playground", ("playground",)),
    ("dance", ("danc", "ballet", "salsa", "waltz", "pirouette")),
    ("swordplay", ("sword",)),
    ("run", ("run", "jog")),
    ("jump", ("jump", "hop", "leap")),
    ("walk", ("walk", "stroll")),
    ("punch", ("punch", "strike", "box", "kick")),
    ("bend", ("bend", "scoop", "pick up")),
    ("wash", ("wash",)),
    ("climb", ("climb",)),
    ("sit", ("sit",)),
)
"""Coarse activity from a CMU description: the first label with a matching word start."""


class SharedDirError(FileNotFoundError):
    """`../shared` (or one of its archives) cannot be found."""


@dataclasses.dataclass(frozen=True)
class ClipInfo:
    """What a clip is and where it goes."""

    source: str
    """One of `ARCHIVE_SOURCES`, or "amass"."""
    clip_id: str
    """Stable unique id, `<source>/<name>`, e.g. `bandai2/dataset-2_run_feminine_021`."""
    activity: str
    style: str | None
    """Bandai style, ReActIdle acted / genuine; None elsewhere."""
    performer: str | None
    """CMU subject (`"005"`), ReActIdle performer (`"003"`); None where the data has none (Bandai, AMASS)."""
    description: str
    split: str | None
    """"train" | "val" | "test"; None for AMASS sub-datasets outside the paper's lists."""

    @property
    def name(self) -> str:
        """The clip id without its source prefix."""
        return self.clip_id.split("/", 1)[1]


def find_shared_dir() -> Path:
    """`$EGOALLO_SHARED`, else `../shared` from the current directory, else from the repository root."""
    env = os.environ.get(SHARED_ENV_VAR)
    if env:
        path = Path(env)
        if not path.is_dir():
            raise SharedDirError(f"${SHARED_ENV_VAR} is {env!r}, which is not a directory.")
        return path
    candidates = [Path.cwd().parent / "shared"]
    root = _repository_root()
    if root is not None:
        candidates.append(root.parent / "shared")
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    tried = ", ".join(str(p) for p in candidates)
    raise SharedDirError(f"shared data directory not found (tried {tried}); set ${SHARED_ENV_VAR}.")


def _repository_root() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() or (parent / ".git").exists():
            return parent
    return None


def archive_path(source: str, shared_dir: Path | None = None) -> Path:
    """The archive of an archive source (`bandai1`, `bandai2`, `cmu`), checked to exist."""
    if source not in ARCHIVES:
        raise ValueError(f"unknown archive source {source!r}; expected one of {ARCHIVE_SOURCES}.")
    path = (shared_dir or find_shared_dir()) / ARCHIVES[source]
    if not path.is_file():
        raise SharedDirError(f"{path}: archive for source {source!r} not found.")
    return path


def bandai_split(source: str, style: str) -> str:
    held_out = BANDAI_STYLE_SPLITS[source]
    return next((split for split, styles in held_out.items() if style in styles), "train")


def cmu_split(subject: int) -> str:
    return next((split for split, subjects in CMU_SUBJECT_SPLITS.items() if subject in subjects), "train")


def daz_split(subject: int, name: str = "") -> str:
    if name in DAZ_VALIDATION_CLIPS:
        return "val"
    return next((split for split, subjects in DAZ_SUBJECT_SPLITS.items() if subject in subjects), "train")


def reactidle_split(performer: int) -> str:
    return next((split for split, ids in REACTIDLE_PERFORMER_SPLITS.items() if performer in ids), "train")


def amass_split(sub_dataset: str) -> str | None:
    name = AMASS_ALIASES.get(sub_dataset, sub_dataset)
    return next((split for split, names in AMASS_SPLITS.items() if name in names), None)


def clip_split(info: dict) -> str | None:
    """The split the current rules give a built clip, from its stored `ClipInfo` fields (a build re-packed after
    the rules change re-splits without re-retargeting)."""
    source, name = info["source"], info["clip_id"].split("/", 1)[1]
    if source in BANDAI_STYLE_SPLITS:
        return bandai_split(source, info["style"])
    if source == "cmu":
        return cmu_split(int(info["performer"]))
    if source == "cmu_daz":
        return daz_split(int(info["performer"]), name)
    if source == "reactidle":
        return reactidle_split(int(info["performer"]))
    if source == "amass":
        return amass_split(name.split("/", 1)[0])
    return info.get("split")


def cmu_activity(description: str) -> str:
    """Coarse activity label of a CMU description (`"other"` when nothing matches)."""
    text = description.lower()
    for label, words in _CMU_ACTIVITIES:
        if any(re.search(rf"\b{re.escape(w)}", text) for w in words):
            return label
    return "other"


def bandai_clip(member: str) -> ClipInfo | None:
    """The clip a Bandai archive member holds, or None if it isn't a clip BVH."""
    m = _BANDAI_MEMBER.search(member)
    if m is None:
        return None
    number, name, content, style, _ = m.groups()
    source = f"bandai{number}"
    return ClipInfo(
        source=source,
        clip_id=f"{source}/{name}",
        activity=content,
        style=style,
        performer=None,
        description=f"{content}, {style} style",
        split=bandai_split(source, style),
    )


def cmu_clip(member: str, descriptions: dict[tuple[int, int], str]) -> ClipInfo | None:
    """The clip a CMU archive member holds, or None if it isn't a clip BVH."""
    m = _CMU_MEMBER.search(member)
    if m is None:
        return None
    folder, name, subject, trial = m.groups()
    description = descriptions.get((int(subject), int(trial)), "")
    return ClipInfo(
        source="cmu",
        clip_id=f"cmu/{name}",
        activity=cmu_activity(description),
        style=None,
        performer=folder,
        description=description,
        split=cmu_split(int(subject)),
    )


def daz_clip(member: str, manifest: dict[str, tuple[str, str]]) -> ClipInfo | None:
    """The clip a CMU Daz archive member holds, or None if it isn't a clip BVH."""
    m = _DAZ_MEMBER.search(member)
    if m is None:
        return None
    folder, name, subject, _ = m.groups()
    description, tags = manifest.get(name, ("", ""))
    return ClipInfo(
        source="cmu_daz",
        clip_id=f"cmu_daz/{name}",
        activity=DAZ_ACTIVITIES.get(tags, "exercise" if "exercise" in tags else "other"),
        style=None,
        performer=folder,
        description=description,
        split=daz_split(int(subject), name),
    )


def reactidle_clip(member: str) -> ClipInfo | None:
    """The clip a ReActIdle archive member holds, or None if it isn't a clip BVH."""
    m = _REACTIDLE_MEMBER.search(member)
    if m is None:
        return None
    kind, name, performer, _ = m.groups()
    return ClipInfo(
        source="reactidle",
        clip_id=f"reactidle/{name}",
        activity="idle",
        style=kind,
        performer=performer,
        description=f"standing idle, {kind}",
        split=reactidle_split(int(performer)),
    )


def read_daz_manifest(text: str) -> dict[str, tuple[str, str]]:
    """`clip name -> (CMU description, tags)` from the CMU Daz `MANIFEST.tsv` (its clip table only)."""
    out = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 5 and re.fullmatch(r"\d+_\d+", fields[0]):
            out[fields[0]] = (fields[3].strip(), fields[4].strip())
    return out


def amass_clip(relative: Path) -> ClipInfo:
    """The clip of an AMASS file at `relative` (to the AMASS directory)."""
    sub_dataset = relative.parts[0]
    name = relative.with_suffix("").as_posix()
    return ClipInfo(
        source="amass",
        clip_id=f"amass/{name}",
        activity="unknown",
        style=None,
        performer=None,
        description=name,
        split=amass_split(sub_dataset),
    )


def read_cmu_index(text: str) -> dict[tuple[int, int], str]:
    """`(subject, trial) -> description` from the CMU `index.csv`."""
    rows = csv.DictReader(io.StringIO(text))
    return {(int(r["Subject"]), int(r["Trial #"])): r["Motion Description"].strip() for r in rows}


def iter_archive_clips(archive: str | os.PathLike) -> Iterator[tuple[ClipInfo, str]]:
    """Stream `(info, bvh_text)` for every clip BVH of an archive, in archive order.

    Reads the `.tar.xz` sequentially (`r|xz`) without extracting it. The CMU
    `index.csv` and the CMU Daz `MANIFEST.tsv` may sit anywhere in their
    archive, so the first clip of either triggers one extra streaming pass
    that reads only that file.
    """
    descriptions: dict[tuple[int, int], str] | None = None
    manifest: dict[str, tuple[str, str]] | None = None
    with tarfile.open(archive, mode="r|xz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".bvh"):
                continue
            info = bandai_clip(member.name) or reactidle_clip(member.name)
            if info is None and _CMU_MEMBER.search(member.name):
                if descriptions is None:
                    descriptions = read_cmu_index(_read_archive_text(archive, _CMU_INDEX))
                info = cmu_clip(member.name, descriptions)
            if info is None and _DAZ_MEMBER.search(member.name):
                if manifest is None:
                    manifest = read_daz_manifest(_read_archive_text(archive, _DAZ_MANIFEST))
                info = daz_clip(member.name, manifest)
            if info is None:
                continue
            text = tar.extractfile(member).read().decode("utf-8", errors="replace")
            yield info, text


def _read_archive_text(archive: str | os.PathLike, name: str) -> str:
    """The text of the archive member whose path ends with `name` ("" if there is none)."""
    with tarfile.open(archive, mode="r|xz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(name):
                return tar.extractfile(member).read().decode("utf-8", errors="replace")
    return ""


def iter_amass_files(amass_dir: str | os.PathLike) -> Iterator[tuple[ClipInfo, Path]]:
    """`(info, path)` for every motion `.npz` under `amass_dir`, sorted by path.

    Motion files are `*_poses.npz` and any other `.npz` with a `poses` key
    (per-subject `shape.npz` files have none); unreadable files are kept so
    the build reports them.
    """
    root = Path(amass_dir)
    if not root.is_dir():
        raise SharedDirError(f"{root}: AMASS directory not found.")
    for path in sorted(root.rglob("*.npz")):
        relative = path.relative_to(root)
        if len(relative.parts) >= 2 and (path.name.endswith("_poses.npz") or _has_poses(path)):
            yield amass_clip(relative), path


def _has_poses(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as f:
            return "poses" in f.files
    except Exception:  # not a readable npz: let the reader report it
        return True
