"""The predictor role: a saved model loads and predicts without the training code."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import warnings

import pytest

from tsdiff.errors import RangeError
from tsdiff.results import ForecastResult, ImputeResult

SCRIPT = """
import json, sys
from tsdiff.datasets import pm25_slice
from tsdiff.predictor import Predictor

model = Predictor.load(sys.argv[1])
df = pm25_slice("ground").iloc[:60]
df = df.assign(**{c: df[c].where(df.index % 4 > 0) for c in df.columns[1:3]})
out = model.impute(df, n_samples=4, seed=0)
fc = model.forecast(df, 6, n_samples=4, seed=0)
loaded = sorted(k for k in sys.modules if k.startswith("tsdiff."))
print(json.dumps({"loaded": loaded, "imputed": int(out.frame.filter(like="_imputed").sum().sum()),
                  "types": [type(out).__name__, type(fc).__name__], "rows": len(fc.frame)}))
"""


def test_a_saved_model_predicts_without_importing_training_code():
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, "tests/golden/forecaster"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    training = {"tsdiff.training", "tsdiff.prior_training", "tsdiff.estimator", "tsdiff.model"}
    assert not training & set(got["loaded"]), got["loaded"]
    assert got["imputed"] > 0 and got["rows"] > 0
    assert got["types"] == [ImputeResult.__name__, ForecastResult.__name__]


def test_weights_stored_as_float16_halve_the_file_and_load_as_float32(fitted, tmp_path):
    import pytest
    import torch

    from tsdiff.errors import RangeError
    from tsdiff.model import TSDiff
    from tsdiff.serialization import stored_weights_dtype

    full = fitted.save(tmp_path / "full") / "weights.safetensors"
    half = fitted.save(tmp_path / "half", weights_dtype="float16") / "weights.safetensors"
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = TSDiff.load(tmp_path / "half")
    for k, v in fitted.net.state_dict().items():
        w = loaded.net.state_dict()[k]
        assert w.dtype == v.dtype
        torch.testing.assert_close(w, v.to(torch.float16).to(v.dtype))
    # a tool that rewrites a model reads back the dtype it was stored in
    assert stored_weights_dtype(tmp_path / "half") == "float16"
    assert stored_weights_dtype(tmp_path / "full") == "float32"
    with pytest.raises(RangeError, match="weights_dtype"):
        fitted.save(tmp_path / "bad", weights_dtype="int8")
    assert not (tmp_path / "bad").exists()


def test_caveats_are_the_texts_of_the_warnings_a_call_raises(fitted):
    assert fitted.caveats("impute") == [] and fitted.caveats("forecast") == []
    fitted_steps = fitted.config.sample.steps
    said = fitted.caveats("impute", steps=fitted_steps - 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted.options(steps=fitted_steps - 1)
    assert len(said) == 1 and [str(w.message) for w in caught] == said
    impute_only = copy.deepcopy(fitted)
    impute_only.config = impute_only.config.replace(train={"mix_weights": (1.0, 0.0, 0.0, 0.0)})
    (untrained,) = impute_only.caveats("forecast")
    assert "trained to impute only" in untrained and impute_only.caveats("impute") == []
    with pytest.raises(RangeError, match="task must be"):
        fitted.caveats("backtest")
