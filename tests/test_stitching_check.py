"""The stitching experiment's pooled variant: every covering window gives its share of a
step's samples, the nearest-centre window first; with one sample it is the library's own
stitching (``tsdiff.data.stitch``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tsdiff.data import stitch

from .conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "stitching_check.py"


def _script():
    return load_script("stitching_check")


def _windows(n: int) -> tuple[np.ndarray, np.ndarray, int]:
    starts = np.array([0, 4, 8])  # window 8, stride 4, a 16-step series
    # each window's value says which window and sample drew it: 10 * window + sample
    w = np.arange(3)[:, None, None, None] * 10 + np.arange(n)[None, :, None, None]
    return np.broadcast_to(w, (3, n, 2, 8)).astype(float), starts, 16


def test_one_sample_comes_from_the_nearest_centre_window_as_stitch_does():
    per_window, starts, length = _windows(1)
    got = _script().pooled_steps(per_window, starts, length)
    np.testing.assert_array_equal(got, stitch(per_window, starts, length))


def test_samples_split_evenly_between_covering_windows_nearest_first():
    per_window, starts, length = _windows(4)
    got = _script().pooled_steps(per_window, starts, length)  # (n, K, T)
    assert got.shape == (4, 2, 16)
    # step 0: only window 0 covers it; step 5: windows 0 (centre 3.5) and 1 (centre 7.5),
    # window 0 nearer; step 7: window 1 nearer than window 0
    np.testing.assert_array_equal(got[:, 0, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(got[:, 0, 5], [0, 1, 12, 13])
    np.testing.assert_array_equal(got[:, 0, 7], [10, 11, 2, 3])
    np.testing.assert_array_equal(got[:, 0, 15], [20, 21, 22, 23])


def test_an_unknown_variant_is_refused_with_exit_2_before_any_work(tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "pm25-beijing",
            "--variants",
            "owner,stride-x,nearest",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "unknown variant(s) stride-x, nearest" in r.stderr
    assert not (tmp_path / "out").exists()
