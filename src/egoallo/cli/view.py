"""`egoallo view`: a result in a local web viewer (viser)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import tyro

from ..files import require_file
from ..thirdparty import require
from .checks import check_range


def view(
    result: Annotated[Path, tyro.conf.Positional],
    host: str = "127.0.0.1",
    port: int = 8080,
    points: Path | None = None,
    body_model: Path | None = None,
) -> None:
    """Open a result.npz in the browser: bodies over time, head trajectory, floor, foot contacts, points.

    Args:
        result: result.npz from `egoallo infer`.
        host: Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
        port: Port to listen on.
        points: SLAM point cloud to draw (Aria global_points.csv.gz, .ply, .npy/.npz), e.g. the one given to `egoallo infer --points`.
        body_model: The body model the result was made with (default: $EGOALLO_SMPLH_MODEL or the shipped one).
    """
    check_range("--port", port, 1, 65535)
    require_file(result, "a result.npz from egoallo infer")
    if points is not None:
        require_file(points, "a point cloud")
    require("viser", "the browser viewer")
    from ..body import BodyModel
    from ..inputs.points import read_points
    from ..result import InferenceResult, check_body_model
    from ..viz.viewer import ResultViewer, SceneData, ensure_port_free

    data = InferenceResult.load(result)
    ensure_port_free(host, port)  # before the mesh precomputation, so a busy port fails fast
    cloud = read_points(points).points if points is not None else None
    body = BodyModel.load_from_env_or_default(body_model)
    check_body_model(data, body, str(result))
    scene = SceneData.from_result(data, body, points=cloud)
    if scene.wrists is None and (data.metadata.get("wrist_palm") or {}).get("source"):
        print(f"note: the wrist-and-palm file {data.metadata['wrist_palm']['source']} is gone; wrists not shown.")
    viewer = ResultViewer(scene, host=host, port=port, title=result.name)
    print(f"egoallo view: {viewer.url} (Ctrl+C to stop)", flush=True)
    try:
        viewer.play()
    except KeyboardInterrupt:
        pass
    finally:
        viewer.close()
