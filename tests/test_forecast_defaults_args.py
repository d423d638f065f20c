"""The CLI-defaults forecast benchmark refuses an unknown frame before any work."""

from __future__ import annotations

import subprocess
import sys


def test_an_unknown_frame_exits_2_naming_it_and_the_frames(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "tsdiff.benchmarks.forecast_defaults", "--frames", "pm25,pm2",
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2
    assert "unknown frame(s) ['pm2']; the frames are etth1-OT, etth1, pm25" in r.stderr
    assert not (tmp_path / "out").exists()
