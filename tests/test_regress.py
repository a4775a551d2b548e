"""digittrain regress: y = f(x) with an identity output and MSE."""

import re

import numpy as np
from click.testing import CliRunner

from digittrain.cli import main


def test_parabola_is_fitted(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 400)
    y = x**2 + rng.normal(0, 0.02, 400)
    data = tmp_path / "xy.csv"
    data.write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in zip(x, y)))
    plot = tmp_path / "fit.png"
    result = CliRunner().invoke(main, ["regress", str(data), "--epochs", "300", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    final = float(re.search(r"Final validation MSE = (\S+)", result.output).group(1))
    assert final < 0.003  # noise variance is 0.0004; a [1, 4, 4, 1] piecewise-linear fit gets close
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_headerless_data_and_bad_data(tmp_path):
    data = tmp_path / "xy.csv"
    data.write_text("".join(f"{v},{2 * v}\n" for v in range(20)))
    assert (
        CliRunner().invoke(main, ["regress", str(data), "--epochs", "2", "--plot", str(tmp_path / "p.png")]).exit_code
        == 0
    )
    data.write_text("x,y\n1,2,3\n4,5,6\n")
    result = CliRunner().invoke(main, ["regress", str(data)])
    assert result.exit_code == 1 and "two columns" in result.output


def test_an_unwritable_plot_fails_before_the_training(tmp_path):
    data = tmp_path / "xy.csv"
    data.write_text("".join(f"{v},{2 * v}\n" for v in range(20)))
    (tmp_path / "blocker").write_text("a file, not a folder")  # as root, chmod would not stop a write
    result = CliRunner().invoke(main, ["regress", str(data), "--plot", str(tmp_path / "blocker" / "p.png")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith(f"Error: {tmp_path / 'blocker' / 'p.png'}: cannot write (")
    assert "Epoch" not in result.output and list(tmp_path.rglob(".*.tmp")) == []
