from __future__ import annotations

import pytest

from .conftest import load_script


def _script():
    return load_script("recalibrate")


def test_draws_below_one_exit_2_before_anything_is_loaded(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as ex:
        _script().main(["no-such-model", str(tmp_path / "out"), "--draws", "0"])
    assert ex.value.code == 2
    assert "--draws must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
