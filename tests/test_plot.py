"""Figures from real outputs: each plot function and `tsdiff plot` write a real image."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from tsdiff import plot
from tsdiff.cli import main
from tsdiff.errors import ConfigError, DataError

PNG = b"\x89PNG\r\n\x1a\n"
KW = {"n_samples": 4, "steps": 4, "seed": 0}


@pytest.fixture(scope="module")
def outputs(fitted, pm25) -> dict[str, pd.DataFrame]:
    data = pm25.iloc[500:560]
    imputed = fitted.impute(data, return_trajectory=True, **KW)
    forecast = fitted.forecast(data, 6, return_trajectory=True, **KW)
    filled, traj = imputed.frame, imputed.trajectory
    fc, fc_traj = forecast.frame, forecast.trajectory
    return {
        "data": data,
        "filled": filled,
        "traj": traj,
        "forecast": fc,
        "fc_traj": fc_traj,
        "forward": fitted.forward_process(data, states=5),
    }


def _png(path) -> int:
    body = path.read_bytes()
    assert body[:8] == PNG
    return len(body)


def test_plot_functions_write_non_empty_pngs(outputs, tmp_path):
    o = outputs
    station = [c for c in o["data"].columns if c != "timestamp"][0]
    figs = {
        "impute": plot.plot_imputation(o["filled"], path=tmp_path / "impute.png"),
        "forecast": plot.plot_forecast(
            o["forecast"], history=o["data"], path=tmp_path / "forecast.png"
        ),
        "trajectory": plot.plot_trajectory(o["traj"], path=tmp_path / "trajectory.png"),
        "fc_trajectory": plot.plot_trajectory(
            o["fc_traj"], variable=station, sample=2, path=tmp_path / "fc_trajectory.png"
        ),
        "forward": plot.plot_forward(o["forward"], path=tmp_path / "forward.png"),
    }
    for name, fig in figs.items():
        assert _png(tmp_path / f"{name}.png") > 10_000, name  # a drawn figure, not a blank
        plt.close(fig)
    # one panel per recorded state: 4 steps make 5 states (noise .. result), all kept
    assert sum(ax.get_visible() for ax in figs["trajectory"].axes) == 5
    assert figs["trajectory"].axes[0].get_title().startswith("step 0")
    assert figs["forecast"].axes[0].get_legend_handles_labels()[1][0] == "history"


def test_svg_and_bad_paths(outputs, tmp_path):
    fig = plot.plot_forecast(outputs["forecast"], path=tmp_path / "fc.svg")
    assert (tmp_path / "fc.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    with pytest.raises(ConfigError, match=".png or .svg"):
        plot.save_figure(fig, tmp_path / "fc.jpg")
    plt.close(fig)
    with pytest.raises(DataError, match="trajectory"):
        plot.plot_trajectory(outputs["filled"])
    with pytest.raises(DataError, match="forecast"):
        plot.plot_forecast(outputs["filled"])


def test_cli_plot_from_parquet_outputs(fitted, pm25, tmp_path, capsys):
    fitted.save(tmp_path / "model")
    pm25.iloc[500:560].to_parquet(tmp_path / "data.parquet", index=False)
    args = [str(tmp_path / "model"), str(tmp_path / "data.parquet"), "--n-samples", "4"]
    assert (
        main(
            ["impute", *args, "--steps", "4", "--out", str(tmp_path / "imp.parquet")]
            + ["--trajectory-out", str(tmp_path / "traj.parquet"), "--trajectory-steps", "0,2,4"]
        )
        == 0
    )
    assert sorted(pd.read_parquet(tmp_path / "traj.parquet")["step"].unique()) == [0, 2, 4]
    assert main(["forecast", *args, "--horizon", "6", "--out", str(tmp_path / "fc.parquet")]) == 0
    for kind, frame, extra in (
        ("impute", "imp", []),
        ("forecast", "fc", ["--history", str(tmp_path / "data.parquet")]),
        ("trajectory", "traj", ["--sample", "1"]),
    ):
        out = tmp_path / f"{kind}.png"
        rc = main(["plot", kind, str(tmp_path / f"{frame}.parquet"), "--out", str(out), *extra])
        assert rc == 0, kind
        assert _png(out) > 10_000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files
    capsys.readouterr()

    bad = [
        (["plot", "impute", str(tmp_path / "absent.parquet")], "input not found"),
        (["plot", "trajectory", str(tmp_path / "imp.parquet")], "not a trajectory"),
        (["plot", "impute", str(tmp_path / "imp.parquet"), "--series", "x"], "series"),
        (["plot", "forecast", str(tmp_path / "traj.parquet")], "not a forecast"),
    ]
    for argv, words in bad:
        assert main([*argv, "--out", str(tmp_path / "x.png")]) == 2, argv
        assert words in capsys.readouterr().err
    assert main(["plot", "impute", str(tmp_path / "imp.parquet"), "--out", "x.gif"]) == 2
    assert ".png or .svg" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
