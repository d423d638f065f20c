from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "recalibrate.py"


def _script():
    spec = importlib.util.spec_from_file_location("recalibrate_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_draws_below_one_exit_2_before_anything_is_loaded(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as ex:
        _script().main(["no-such-model", str(tmp_path / "out"), "--draws", "0"])
    assert ex.value.code == 2
    assert "--draws must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
