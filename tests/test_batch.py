"""`egoallo batch`: finding recordings, the manifest, resuming, bad input, the local pool and Ray."""

from __future__ import annotations

import csv
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from egoallo.assets import EXAMPLE_TRAJECTORY
from egoallo.batch import BatchOptions, Recording, recordings_in, run_corpus
from egoallo.batch.backends import WorkerLost
from egoallo.batch.jobs import Job
from egoallo.batch.runner import run_jobs
from egoallo.batch.summary import Row
from egoallo.cli.main import main, normalize_args
from egoallo.errors import UserError
from egoallo.pipeline import InferOptions
from egoallo.result import InferenceResult

ARRAYS = ("timestamps_ns", "T_world_cpf", "joints_world", "T_world_root", "local_rotations", "betas", "contacts",
          "stature_m", "T_input_zup")


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def mps_files(slam: Path, *, trajectory: Path = EXAMPLE_TRAJECTORY, calibration: Path | None = None) -> Path:
    """An MPS `slam/` folder holding `trajectory` (and the online calibration when given)."""
    slam.mkdir(parents=True)
    shutil.copyfile(trajectory, slam / "closed_loop_trajectory.csv")
    if calibration is not None:
        shutil.copyfile(calibration, slam / "online_calibration.jsonl")
    return slam


def summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv") as f:
        return {row["recording"]: row for row in csv.DictReader(f)}


def test_finds_the_public_aria_layouts_and_loose_trajectories(tmp_path):
    corpus = tmp_path / "corpus"
    # Plain MPS output: mps_<name>_vrs beside <name>.vrs
    plain = mps_files(corpus / "lab" / "mps_walk_vrs" / "slam")
    write(plain / "semidense_points.csv.gz")
    write(plain / "online_calibration.jsonl")
    write(plain.parent / "hand_tracking" / "wrist_and_palm_poses.csv")
    write(corpus / "lab" / "walk.vrs")
    # Nymeria: head and observer are heads, the wristbands are not
    for device in ("recording_head", "recording_observer", "recording_lwrist", "recording_rwrist"):
        mps_files(corpus / "nymeria" / "seq_a" / device / "mps" / "slam")
    write(corpus / "nymeria" / "seq_a" / "recording_head" / "data" / "data.vrs")
    np.savez(corpus / "nymeria" / "seq_a" / "body_xdata.npz", joints=np.zeros(3))  # not a trajectory
    # Aria Everyday Activities: <sequence>/<sequence>.vrs and <sequence>/mps/slam (older MPS: trajectory/)
    aea = mps_files(corpus / "aea" / "loc1_script1_seq1_rec1" / "mps" / "trajectory")
    write(aea / "global_points.csv.gz")
    write(corpus / "aea" / "loc1_script1_seq1_rec1" / "recording.vrs")
    # Loose files: TUM text, a trajectory npz, an MPS csv; a README, a result and a hands file are not recordings
    write(corpus / "tum" / "office.txt", "# time x y z qx qy qz qw\n0.0 0 0 1.6 0 0 0 1\n")
    np.savez(corpus / "tum" / "office.npz", timestamps_ns=np.arange(3), T_world_cpf=np.tile(np.eye(4), (3, 1, 1)))
    np.savez(corpus / "tum" / "result.npz", timestamps_ns=np.arange(3), T_world_cpf=np.zeros((3, 4, 4)),
             joints_world=np.zeros(1))
    shutil.copyfile(EXAMPLE_TRAJECTORY, corpus / "adt.csv")
    write(corpus / "README.txt", "not a trajectory\n")
    write(corpus / ".hidden" / "x.txt", "0 0 0 0 0 0 0 1\n")

    found = {r.name: r for r in recordings_in(corpus)}
    assert sorted(found) == ["adt", "aea/loc1_script1_seq1_rec1", "lab/mps_walk_vrs", "nymeria/seq_a/recording_head",
                             "nymeria/seq_a/recording_observer", "tum/office.npz", "tum/office.txt"]
    walk = found["lab/mps_walk_vrs"]
    assert walk.points.name == "semidense_points.csv.gz" and walk.calibration.name == "online_calibration.jsonl"
    assert walk.wrist_palm == plain.parent / "hand_tracking" / "wrist_and_palm_poses.csv"
    assert walk.vrs == corpus / "lab" / "walk.vrs"
    assert found["nymeria/seq_a/recording_head"].vrs.name == "data.vrs"
    assert found["nymeria/seq_a/recording_observer"].vrs is None
    assert found["aea/loc1_script1_seq1_rec1"].points.name == "global_points.csv.gz"
    assert found["aea/loc1_script1_seq1_rec1"].vrs.name == "recording.vrs"
    assert found["tum/office.txt"].points is None


def test_manifest_csv_and_jsonl(tmp_path):
    write(tmp_path / "data" / "a.txt")
    (tmp_path / "m.csv").write_text("trajectory,points,name\ndata/a.txt,data/p.ply,first\ndata/b.txt,,\n")
    found = recordings_in(tmp_path / "m.csv")
    assert found == [Recording("data/b", tmp_path / "data/b.txt"),
                     Recording("first", tmp_path / "data/a.txt", points=tmp_path / "data/p.ply")]
    (tmp_path / "m.jsonl").write_text('{"trajectory": "data/a.txt", "wrist_palm": "w.csv"}\n\n')
    assert recordings_in(tmp_path / "m.jsonl") == [Recording("data/a", tmp_path / "data/a.txt", wrist_palm=tmp_path / "w.csv")]
    (tmp_path / "tall.csv").write_text("trajectory,stature\ndata/a.txt,1.85\n")
    tall = recordings_in(tmp_path / "tall.csv")
    assert tall == [Recording("data/a", tmp_path / "data/a.txt", stature_m=1.85)]
    from egoallo.batch.jobs import options_for
    from egoallo.pipeline import InferOptions

    assert options_for(tall[0], BatchOptions(infer=InferOptions(stature_m=1.6))).stature_m == 1.85  # its own first
    assert options_for(Recording("b", tmp_path / "b.txt"), BatchOptions(infer=InferOptions(stature_m=1.6))).stature_m == 1.6
    for text, message in (("trajectory,height\na.txt,1.7\n", "unknown column"), ("points\np.ply\n", "no 'trajectory'"),
                          ("trajectory,stature\na.txt,185\n", "line 2: stature 185: expected the wearer's height in metres"),
                          ("trajectory,name\na.txt,x\nb.txt,x\n", "line 3: name 'x' is also line 2's"),
                          ("trajectory,name\na.txt,../x\n", "relative path inside OUT")):
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(UserError, match=message):
            recordings_in(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text('{"trajectory": "a.txt"}\n[1]\n')
    with pytest.raises(UserError, match="line 2: expected a JSON object"):
        recordings_in(tmp_path / "bad.jsonl")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_dir) -> Path:
    """Two Aria MPS recordings (the example, the real short trajectory with its online calibration) and a
    TUM file with a garbage line."""
    corpus = tmp_path_factory.mktemp("corpus")
    aria = shared_dir / "aria"
    mps_files(corpus / "seq1" / "mps" / "slam")
    mps_files(corpus / "mps_short_vrs" / "slam", trajectory=aria / "mps_closed_loop_trajectory_short.csv",
              calibration=aria / "mps_online_calibration_first_line.jsonl")
    write(corpus / "broken.txt", "0 0 0 1.6 0 0 0 1\n0.03 0 0 1.6 0 0 nan\n")
    return corpus


def test_a_corpus_gives_infer_s_results_and_a_rerun_redoes_nothing(corpus, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    flags = ["--checkpoint", str(tiny_checkpoint), "--steps", "2"]
    assert main(["batch", str(corpus), "--out", str(out), "--workers", "2", *flags]) == 3  # a recording failed
    printed = capsys.readouterr().out
    assert "3 recordings: 2 ok, 1 failed" in printed and f"summary: {out / 'summary.csv'}" in printed
    rows = summary(out)
    assert rows["broken"]["status"] == "failed" and "broken.txt: line 2" in rows["broken"]["error"]
    assert rows["seq1"]["status"] == "ok" and rows["seq1"]["frames"] == "330" and float(rows["seq1"]["coverage"]) == 1
    assert float(rows["seq1"]["pelvis_height_max_m"]) > 0

    # The same arrays as `egoallo infer` with the recording's companions as flags
    short = corpus / "mps_short_vrs" / "slam"
    alone = tmp_path / "infer.npz"
    assert main(["infer", str(short / "closed_loop_trajectory.csv"), "--out", str(alone), "--threads", "1",
                 "--calibration", str(short / "online_calibration.jsonl"), *flags]) == 0
    batch, infer = InferenceResult.load(out / "mps_short_vrs" / "result.npz"), InferenceResult.load(alone)
    for key in ARRAYS:
        assert np.array_equal(getattr(batch, key), getattr(infer, key)), key
    assert batch.metadata["plausibility"] == infer.metadata["plausibility"]

    # A rerun skips the finished ones; another seed, a touched input or --force redoes them
    made = (out / "seq1" / "result.npz").stat().st_mtime_ns
    assert main(["batch", str(corpus), "--out", str(out), "--workers", "1", *flags]) == 3
    assert [r["status"] for r in summary(out).values()] == ["failed", "skipped", "skipped"]
    assert summary(out)["seq1"]["frames"] == "330"
    assert (out / "seq1" / "result.npz").stat().st_mtime_ns == made
    os.utime(corpus / "seq1" / "mps" / "slam" / "closed_loop_trajectory.csv")
    assert main(["batch", str(corpus), "--out", str(out), "--workers", "1", *flags]) == 3
    assert [r["status"] for r in summary(out).values()] == ["failed", "skipped", "ok"]
    capsys.readouterr()


def test_samples_give_infer_s_consensus_and_a_changed_consensus_redoes(tmp_path, tiny_checkpoint, capsys):
    corpus = tmp_path / "corpus"
    mps_files(corpus / "seq" / "mps" / "slam")
    out = tmp_path / "out"
    flags = ["--checkpoint", str(tiny_checkpoint), "--steps", "1", "--samples", "2", "--consensus", "medoid",
             "--guided", "both", "--device-is-cpf", "--threads", "1"]
    assert main(["batch", str(corpus), "--out", str(out), "--workers", "1", *flags]) == 0
    alone = tmp_path / "infer.npz"
    assert main(["infer", str(corpus / "seq" / "mps" / "slam" / "closed_loop_trajectory.csv"), "--out", str(alone),
                 *flags]) == 0
    batch, infer = InferenceResult.load(out / "seq" / "result.npz"), InferenceResult.load(alone)
    assert batch.metadata["consensus"] == infer.metadata["consensus"]
    for key in ("joints_world", "joints_world_consensus", "joint_spread_m", "betas_consensus"):
        assert np.array_equal(getattr(batch, key), getattr(infer, key)), key

    assert main(["batch", str(corpus), "--out", str(out), "--workers", "1", *flags]) == 0
    assert summary(out)["seq"]["status"] == "skipped"
    flags[flags.index("medoid")] = "mean"
    assert main(["batch", str(corpus), "--out", str(out), "--workers", "1", *flags]) == 0
    assert summary(out)["seq"]["status"] == "ok"
    capsys.readouterr()


def test_a_result_not_written_by_batch_is_kept(corpus, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    write(out / "seq1" / "result.npz", "mine")
    options = BatchOptions(InferOptions(checkpoint=tiny_checkpoint, steps=1, device_is_cpf=True, threads=1))
    report = run_corpus(corpus, out, options, workers=1, progress=False, say=lambda _: None)
    rows = {r.recording: r for r in report.rows}
    assert rows["seq1"].status == "failed" and "not written by egoallo batch" in rows["seq1"].error
    assert (out / "seq1" / "result.npz").read_text() == "mine"
    assert report.exit_code == 3


def test_a_manifest_row_naming_a_missing_file_fails_alone(corpus, tiny_checkpoint, tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    rows = [{"trajectory": str(corpus / "seq1" / "mps" / "slam" / "closed_loop_trajectory.csv"), "name": "one"},
            {"trajectory": str(corpus / "seq1" / "mps" / "slam" / "closed_loop_trajectory.csv"), "name": "two",
             "points": "missing.ply"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "--out", str(out), "--workers", "1", "--checkpoint", str(tiny_checkpoint),
                 "--steps", "1", "--device-is-cpf"]) == 3
    found = summary(out)
    assert found["one"]["status"] == "ok"
    assert found["two"]["status"] == "failed" and found["two"]["error"] == (
        f"{tmp_path / 'missing.ply'}: file not found; expected a point cloud.")
    capsys.readouterr()


def test_guidance_needs_each_recording_s_file(corpus, tiny_checkpoint, tmp_path):
    options = BatchOptions(InferOptions(checkpoint=tiny_checkpoint, steps=1, threads=1), guidance=frozenset({"wrist3d"}))
    report = run_corpus(corpus, tmp_path / "out", options, workers=1, progress=False, say=lambda _: None)
    assert {r.status for r in report.rows} == {"failed"}
    assert "has no wrist and palm tracking" in report.rows[-1].error


def test_bad_command_input_is_exit_2(corpus, tmp_path, capsys):
    assert main(["batch", str(corpus), "--out", str(corpus / "out")]) == 2
    assert "inside the corpus" in capsys.readouterr().err
    assert not (corpus / "out").exists()
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no recordings found" in capsys.readouterr().err
    write(tmp_path / "file")
    assert main(["batch", str(corpus), "--out", str(tmp_path / "file" / "out")]) == 2
    assert "is a file" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["batch", str(corpus), "--out", str(locked / "out")]) == 2
        assert "cannot write" in capsys.readouterr().err
    assert main(["batch", str(corpus), "--out", str(tmp_path / "o"), "--ray", "127.0.0.1:9"]) == 2
    assert "cannot reach a Ray cluster" in capsys.readouterr().err
    assert main(["batch", str(corpus), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert main(["batch", str(corpus), "--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "no")]) == 2
    assert "checkpoint directory not found" in capsys.readouterr().err
    assert normalize_args(["batch", "c", "--ray"])[0][-1] == "--ray=local"
    assert normalize_args(["batch", "c", "--ray", "--force"])[0][2:] == ["--ray=local", "--force"]
    assert normalize_args(["batch", "c", "--ray", "h:1"])[0][2:] == ["--ray", "h:1"]


class Immediate:
    """A backend that runs nothing: each job ends at once with the row `outcome(job)` gives."""

    slots = 2

    def __init__(self, outcome):
        self.outcome = outcome
        self.submitted: list[Job] = []

    def submit(self, job):
        self.submitted.append(job)
        return job

    def wait(self, handles):
        return [(handles[0], self.outcome(handles[0]))]


def test_a_stop_request_lets_the_running_finish_and_leaves_the_rest_pending(tmp_path):
    jobs = [Job(Recording(f"r{i}", tmp_path / "t.txt"), InferOptions(), tmp_path / f"r{i}.npz", "") for i in range(5)]
    rows, stop = {}, threading.Event()

    def finish(job):
        stop.set()  # as SIGINT does while the first jobs run
        return Row(job.recording.name, "ok", frames=1, seconds=0.1)

    backend = Immediate(finish)
    run_jobs(jobs, backend, rows, stop, lambda: None, lambda _: None, progress=False)
    assert len(backend.submitted) == 2  # the two running when the stop came
    assert [rows[f"r{i}"].status for i in range(5)] == ["ok", "ok", "pending", "pending", "pending"]

    lost = Immediate(lambda job: WorkerLost("killed"))
    run_jobs(jobs[:1], lost, rows, threading.Event(), lambda: None, lambda _: None, progress=False)
    assert rows["r0"].status == "failed" and "worker running it was lost (killed)" in rows["r0"].error


def test_ray_local_cluster(corpus, tiny_checkpoint, tmp_path, capsys):
    pytest.importorskip("ray", reason="pip install 'egoallo[cluster]'")
    out = tmp_path / "out"
    code = main(["batch", str(corpus), "--out", str(out), "--ray", "--workers", "2", "--checkpoint",
                 str(tiny_checkpoint), "--steps", "1", "--device-is-cpf"])
    printed = capsys.readouterr()
    assert code == 3, printed.err
    assert "on a local Ray cluster (2 at once)" in printed.out
    assert [r["status"] for r in summary(out).values()] == ["failed", "ok", "ok"]
    InferenceResult.load(out / "seq1" / "result.npz")


def descendants(pid: int) -> dict[int, str]:
    """The processes below `pid`, each with its command line (read from /proc)."""
    parents, lines = {}, {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (ValueError, OSError):
            continue
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    below, grown = {pid}, True
    while grown:
        more = {p for p, parent in parents.items() if parent in below} - below
        below |= more
        grown = bool(more)
    return {p: lines[p] for p in below - {pid}}


class killer:
    """In a thread: SIGKILL the first process below this one whose command line holds `marker`, once."""

    def __init__(self, marker: str) -> None:
        self.marker, self.killed, self.done = marker, None, threading.Event()

    def _watch(self) -> None:
        import signal
        import time

        while not self.done.is_set():
            found = [(p, line) for p, line in descendants(os.getpid()).items() if self.marker in line]
            if found:
                os.kill(found[0][0], signal.SIGKILL)
                self.killed = found[0]
                return
            time.sleep(0.01)

    def __enter__(self) -> killer:
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


@pytest.fixture
def two_recordings(tmp_path) -> Path:
    corpus = tmp_path / "corpus"
    for name in ("a", "b"):
        mps_files(corpus / name / "mps" / "slam")
    return corpus


def test_a_lost_pool_worker_fails_its_recording_and_the_rest_go_on(two_recordings, tiny_checkpoint, tmp_path):
    options = BatchOptions(infer=InferOptions(checkpoint=tiny_checkpoint, steps=1, device_is_cpf=True, threads=1))
    with killer("spawn_main") as kill:  # the first pool worker, while it starts or runs recording a
        report = run_corpus(two_recordings, tmp_path / "out", options, workers=1, say=lambda _: None, progress=False)
    assert kill.killed is not None
    rows = summary(tmp_path / "out")
    assert rows["a"]["status"] == "failed"
    assert rows["a"]["error"].startswith("the worker running it was lost (a worker process died: killed, or out of "
                                         "memory); rerun to retry it.")
    assert rows["b"]["status"] == "ok"  # on a new pool
    assert report.exit_code == 3 and not (tmp_path / "out" / "a" / "result.npz").exists()
    InferenceResult.load(tmp_path / "out" / "b" / "result.npz")


def test_ray_retries_a_recording_whose_worker_was_killed(two_recordings, tiny_checkpoint, tmp_path):
    pytest.importorskip("ray", reason="pip install 'egoallo[cluster]'")
    shutil.rmtree(two_recordings / "b")
    options = BatchOptions(infer=InferOptions(checkpoint=tiny_checkpoint, steps=1, device_is_cpf=True, threads=1))
    with killer("ray::run_job") as kill:  # the Ray worker while it runs recording a's first attempt
        report = run_corpus(two_recordings, tmp_path / "out", options, workers=1, ray="local", say=lambda _: None,
                            progress=False)
    assert kill.killed is not None and "ray::run_job" in kill.killed[1]
    rows = summary(tmp_path / "out")
    assert rows["a"]["status"] == "ok", rows["a"]["error"]  # run again on a new worker (without retries: "lost")
    assert report.exit_code == 0
    InferenceResult.load(tmp_path / "out" / "a" / "result.npz")
