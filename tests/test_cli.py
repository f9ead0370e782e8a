import numpy as np
from PIL import Image

from egoallo.cli.main import main


def test_body_render_writes_a_picture_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "body.png"
    assert main(["body", "render", "--out", str(out), "--pose", "wave", "--betas", "1.0", "-0.5"]) == 0
    image = np.asarray(Image.open(out).convert("L"))
    assert (image < 250).mean() > 0.05  # a body was drawn, not a blank canvas
    assert "stature" in capsys.readouterr().out
    before = out.stat().st_mtime_ns
    assert main(["body", "render", "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.stat().st_mtime_ns == before


def test_bad_model_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "model.npz"
    np.savez(bad, v_template=np.zeros((10, 3)))
    assert main(["body", "render", "--out", str(tmp_path / "b.png"), "--body-model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "model.npz: missing key" in err and "Traceback" not in err


def test_usage_lists_commands(capsys):
    assert main([]) == 2
    assert "egoallo body render" in capsys.readouterr().err
    assert main(["--help"]) == 0
