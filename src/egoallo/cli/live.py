"""`egoallo live`: the body from a head-pose stream, as it arrives."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import tyro

from ..errors import UserError
from ..files import check_output, require_file
from .checks import check_range, check_seed


def live(
    follow: Path | None = None,
    stdin: bool = False,
    udp: int | None = None,
    ws_input: int | None = None,
    replay: Path | None = None,
    speed: float = 1.0,
    host: str = "127.0.0.1",
    viewer: bool = False,
    port: int = 8080,
    ws_port: int | None = None,
    out: Path | None = None,
    force: bool = False,
    calibration: Path | None = None,
    device_is_cpf: bool = False,
    up: str | None = None,
    floor_z: float | None = None,
    window: int = 32,
    hop: int = 4,
    lookahead: int = 0,
    warmup: int = 30,
    steps: int | None = None,
    warmup_steps: int | None = None,
    guidance: bool = True,
    guidance_iterations: int = 1,
    silence: float = 0.5,
    exit_after_silence: float | None = None,
    checkpoint: Path | None = None,
    body_model: Path | None = None,
    threads: int = 1,
    seed: int = 0,
    stature: Annotated[str | None, tyro.conf.arg(metavar="METRES")] = None,
) -> None:
    """Estimate the body live from a head-pose stream (a growing file, stdin, UDP, WebSocket, or a replayed recording).

    Args:
        follow: A trajectory file another program appends to (Aria MPS CSV or TUM text), read like `tail -f`.
        stdin: Read poses from standard input, one TUM line ('timestamp tx ty tz qx qy qz qw', seconds) each.
        udp: Listen on this local UDP port: one or more TUM lines per datagram (docs/live.md).
        ws_input: Listen on this local WebSocket port: one or more TUM lines per text message (docs/live.md).
        replay: Replay a recorded trajectory (Aria MPS CSV or TUM text) through the live path, at --speed.
        speed: Replay speed (1: real time; 0: as fast as the estimator goes).
        host: Address the UDP, WebSocket and viewer servers listen on (127.0.0.1: this machine only).
        viewer: Show the live body in the browser viewer (viser) at --port.
        port: Port of the browser viewer.
        ws_port: Send every body as JSON on a local WebSocket at this port (docs/live.md).
        out: Write everything emitted to this result.npz when the stream ends or on Ctrl-C (as `egoallo infer` writes it).
        force: Replace --out if it exists.
        calibration: Aria VRS or calibration JSON giving the device-to-CPF transform of MPS rows (else the Aria default).
        device_is_cpf: MPS rows are already CPF poses (identity calibration).
        up: Up axis of the input's world (z, y, -y, ...); default: an MPS row's gravity, else z.
        floor_z: The floor's height along the up axis, when known; else estimated from the first second of walking.
        window: Frames the prior sees per step (emitted ones fixed, new ones sampled).
        hop: New frames per step: the delay is hop - 1 + lookahead frames.
        lookahead: Newest frames sampled but emitted one step later (more context, more delay).
        warmup: Frames sampled together before a segment's first bodies (they also fix the body shape).
        steps: Denoising steps per hop; default: the shipped distilled student's 4 (other counts run the shipped prior), a distilled --checkpoint's own, else 4.
        warmup_steps: Denoising steps of a segment's warm-up (once per segment; it sets the body shape); default: the checkpoint's own (the shipped student's 4; 30 for a prior trained on data).
        guidance: Foot guidance on the new frames (--no-guidance: about a third less time per hop).
        guidance_iterations: Levenberg-Marquardt iterations of the foot guidance per hop.
        silence: Seconds without a pose after which the held-back bodies are emitted and a new segment begins.
        exit_after_silence: End the stream after this many seconds without a pose (default: run until Ctrl-C or the input ends).
        checkpoint: Model directory; default: the shipped distilled student (the shipped prior for step counts it does not take).
        body_model: Body model .npz; default: $EGOALLO_SMPLH_MODEL or the shipped open model.
        threads: CPU threads for the network (one: a hop is small work, and a second thread only helps on an idle machine).
        seed: Random seed.
        stature: The wearer's height in metres (0.5-2.5), when known: the body's shape is fitted to it and, without --floor-z, the floor is placed that body's standing eye height under the head (as egoallo infer --stature).
    """
    given = (("--follow", follow), ("--stdin", stdin), ("--udp", udp), ("--ws-input", ws_input), ("--replay", replay))
    sources = [name for name, value in given if value not in (None, False)]
    if len(sources) != 1:
        raise UserError("give exactly one input: --follow FILE, --stdin, --udp PORT, --ws-input PORT or --replay FILE "
                        f"(got {sources or 'none'}).")
    check_range("--speed", speed, 0.0)
    check_range("--silence", silence, 0.05)
    if exit_after_silence is not None:
        check_range("--exit-after-silence", exit_after_silence, 0.05)
    for flag, value in (("--udp", udp), ("--ws-input", ws_input), ("--port", port), ("--ws-port", ws_port)):
        if value is not None:
            check_range(flag, value, 1, 65535)
    if floor_z is not None and not math.isfinite(floor_z):
        raise UserError(f"--floor-z {floor_z}: expected a finite height.")
    check_seed(seed)
    if stature is not None:
        from ..inputs.stature import check_stature

        stature_m = check_stature(stature)
    else:
        stature_m = None
    if replay is not None:
        require_file(replay, "a head trajectory (Aria MPS .csv or TUM .txt)")
    for flag, path in (("--replay", replay), ("--follow", follow)):
        if path is not None and path.suffix.lower() == ".npz":
            raise UserError(f"{path}: {flag} reads text (an Aria MPS .csv or TUM lines); for an .npz use egoallo infer.")
    if follow is not None and follow.exists() and not follow.is_file():
        raise UserError(f"{follow}: not a file; --follow expects a trajectory file another program appends to.")
    if calibration is not None:
        require_file(calibration, "an Aria .vrs or calibration .json/.jsonl")
    if device_is_cpf and calibration is not None:
        raise UserError("--device-is-cpf and --calibration both give the device-to-CPF transform; give one.")
    out = check_output(out, (".npz",), force=force) if out is not None else None
    if ws_port is not None or ws_input is not None or viewer:
        from ..thirdparty import require

        if viewer:
            require("viser", "the live viewer")
        if ws_port is not None or ws_input is not None:
            require("websockets", "a live WebSocket")

    from ..live.estimator import LiveConfig, live_sampling
    from ..live.stream import StreamLimits

    for flag, value in (("--steps", steps), ("--warmup-steps", warmup_steps)):
        if value is not None:
            check_range(flag, value, 1)
    (checkpoint, steps, eta), (warmup_checkpoint, warmup_steps, warmup_eta) = live_sampling(checkpoint, steps, warmup_steps)
    try:
        config = LiveConfig(window=window, hop=hop, lookahead=lookahead, warmup=warmup, num_steps=steps,
                            warmup_steps=warmup_steps, eta=eta, warmup_eta=warmup_eta, guidance=guidance,
                            guidance_iterations=guidance_iterations, seed=seed, limits=StreamLimits())
    except ValueError as error:
        raise UserError(f"live settings: {error}") from None
    _run(config, follow=follow, stdin=stdin, udp=udp, ws_input=ws_input, replay=replay, speed=speed, host=host, viewer=viewer, port=port,
         ws_port=ws_port, out=out, calibration=calibration, device_is_cpf=device_is_cpf, up=up, floor_z=floor_z,
         silence=silence, exit_after_silence=exit_after_silence, checkpoint=checkpoint, warmup_checkpoint=warmup_checkpoint,
         body_model=body_model, threads=threads, stature_m=stature_m)


def _run(config, **options) -> None:
    """Log the stream's events to stderr while it runs."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    # Dropped poses are counted in the summary, not logged one by one.
    handler.addFilter(lambda record: record.levelno >= logging.WARNING or not record.name.endswith(".estimator"))
    logger = logging.getLogger("egoallo.live")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        _wire(config, **options)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _wire(config, *, follow, stdin, udp, ws_input, replay, speed, host, viewer, port, ws_port, out, calibration, device_is_cpf,
          up, floor_z, silence, exit_after_silence, checkpoint, warmup_checkpoint, body_model, threads, stature_m) -> None:
    """Wire the source, the estimator and the outputs; finish the outputs on the stream's end or Ctrl-C."""
    import dataclasses
    import queue

    import numpy as np

    from ..inputs.trajectory import TrajectoryError, _up_vector
    from ..live import sources
    from ..live.estimator import LiveEstimator
    from ..live.outputs import FrameServer, Recorder, hello_message
    from ..live.session import FrameSetup, LiveSession
    from ..pipeline import load_models
    from ..prior.checkpoint import load_denoiser

    try:
        up_vector = _up_vector(Path("--up"), up) if up is not None else None
    except TrajectoryError as error:
        raise UserError(str(error)) from None
    T_device_cpf = None
    if device_is_cpf:
        T_device_cpf = np.eye(4)
    elif calibration is not None:
        from ..inputs.calibration import load_calibration

        T_device_cpf = load_calibration(calibration).T_device_cpf
    body, denoiser, checkpoint = load_models(threads, 1, body_model, checkpoint)
    warmup_denoiser = denoiser if warmup_checkpoint == checkpoint else load_denoiser(warmup_checkpoint)[1]

    stop = threading.Event()
    lines: queue.Queue = queue.Queue(maxsize=100_000)
    recorder = Recorder()
    outputs = [recorder.add]
    server = live_viewer = None
    udp_socket = ws_source = None
    estimators: list[LiveEstimator] = []

    def make_estimator(T_input_zup: np.ndarray) -> LiveEstimator:
        estimator = LiveEstimator(denoiser, body, T_input_zup=T_input_zup, floor_z=floor_z, config=config,
                                  warmup_denoiser=warmup_denoiser, stature_m=stature_m)
        estimators.append(estimator)
        return estimator

    try:
        if udp is not None:
            try:
                udp_socket = sources.bind_udp(host, udp)
            except OSError as error:
                raise UserError(
                    f"cannot listen on UDP {host}:{udp} ({error.strerror or error}); choose another --udp."
                ) from None
        if ws_input is not None:
            try:
                ws_source = sources.WebSocketInput(host, ws_input, lines)
            except OSError as error:
                raise UserError(
                    f"cannot listen on {host}:{ws_input} ({error.strerror or error}); choose another --ws-input."
                ) from None
        if ws_port is not None:
            try:
                server = FrameServer(host, ws_port, hello_message(config.fps))
            except OSError as error:
                raise UserError(
                    f"cannot listen on {host}:{ws_port} ({error.strerror or error}); choose another --ws-port."
                ) from None
            outputs.append(server.send)
            print(f"egoallo live: bodies as JSON on ws://{host}:{server.port}", flush=True)
        if viewer:
            from ..live.viewer import LiveViewer

            live_viewer = LiveViewer(body, fps=config.fps, host=host, port=port)

            def draw(frames):
                estimator = estimators[-1]
                live_viewer.show(frames[-1], estimator.betas, estimator.floor_z, estimator.T_input_zup)

            outputs.append(draw)
            print(f"egoallo live: viewer at {live_viewer.url}", flush=True)
        if replay is not None:
            target, args = sources.replay, (replay, speed, lines, stop)
        elif follow is not None:
            target, args = sources.follow, (follow, lines, stop)
        elif udp_socket is not None:
            target, args = sources.listen_udp, (udp_socket, lines, stop)
        elif ws_source is not None:
            target, args = None, ()
        else:
            target, args = sources.read_stream, (sys.stdin, "stdin", lines, stop)
        if target is not None:
            threading.Thread(target=target, args=args, daemon=True).start()
        what = {sources.replay: f"replaying {replay} at {speed:g}x", sources.follow: f"following {follow}",
                sources.listen_udp: f"listening on UDP {host}:{udp}", sources.read_stream: "reading stdin",
                None: f"listening on ws://{host}:{ws_input}"}[target]
        print(f"egoallo live: {what}; delay {config.delay_frames} frames ({config.delay_frames / config.fps:.3f} s) "
              f"+ compute; Ctrl+C to stop", flush=True)
        session = LiveSession(make_estimator, frames_to=outputs, frame=FrameSetup(up_vector, T_device_cpf),
                              silence_s=silence, exit_after_silence_s=exit_after_silence)
        with _finish_on_interrupt(stop):
            session.run(lines, stop)
    finally:
        stop.set()
        for closable in (server, live_viewer, udp_socket, ws_source):
            if closable is not None:
                closable.close()
    estimator = estimators[-1] if estimators else None
    _report(session, estimator)
    if out is not None:
        source = replay or follow or (f"udp:{udp}" if udp else f"websocket:{ws_input}" if ws_input else "stdin")
        metadata = {"trajectory": {"path": str(source)},
                    "checkpoint": str(checkpoint), "warmup_checkpoint": str(warmup_checkpoint), "body_model": body.name,
                    "network": dataclasses.asdict(denoiser.config),
                    "latency_s": session.latency.summary(), "warnings": [],
                    "input_rewrites": {"count": session.counts.input_rewrites, "time_shift_s": session.time_shift_ns / 1e9}}
        result = recorder.result(estimator, body, metadata) if estimator is not None else None
        if result is None:
            print(f"egoallo live: no body was estimated; {out} not written", file=sys.stderr)
            return
        result.save(out, force=True)  # checked up front; replaced only now, atomically
        print(f"wrote {out}: {len(result.timestamps_ns)} frames in {len(result.metadata['segments'])} segment(s)")
        from ..run_summary import next_steps, plausibility_warning

        if line := plausibility_warning(result.metadata["plausibility"]):
            print(f"warning: {line}")
        print(next_steps(out))


@contextlib.contextmanager
def _finish_on_interrupt(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C (SIGINT) or a service stop (SIGTERM) sets `stop`, so the stream ends between two poses and every
    output (the --out result included) is finished; a second signal interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupted(signum, frame) -> None:  # noqa: ANN001 (signal's signature)
        if stop.is_set():
            raise KeyboardInterrupt
        name = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
        print(f"egoallo live: {name}; finishing (Ctrl+C again to abort)", file=sys.stderr, flush=True)
        stop.set()

    previous = {signum: signal.signal(signum, interrupted) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _report(session, estimator) -> None:
    """One summary line: frames, segments, dropped and malformed input, latency, throughput."""
    if estimator is None:
        print(f"egoallo live: no pose read ({session.counts.lines} lines, {session.counts.malformed} malformed)")
        return
    stats, counts, latency = estimator.stats, estimator.clock.counts, session.latency.summary()
    rate = stats.frames_emitted / session.busy_s if session.busy_s > 0 else float("nan")
    timing = (f"latency median {latency['median_s']:.3f} s, p95 {latency['p95_s']:.3f} s; " if latency else "")
    print(f"egoallo live: {stats.frames_emitted} frames in {stats.segments} segment(s) from {session.counts.poses} poses "
          f"({counts.dropped_duplicates} duplicate, {counts.dropped_out_of_order} out of order, {counts.gaps} gaps, "
          f"{counts.jumps} jumps, {session.counts.malformed} malformed lines); {timing}"
          f"{rate:.1f} frames per second of compute")
