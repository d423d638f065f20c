"""The saved-model format: a directory of ``config.json``, ``model.json`` (metadata:
variables, grid, scaler, calibration, spec, training log) and ``weights.safetensors``.

No pickle anywhere: a model rebuilds itself from its own config, so loading runs no
code from the files. Saving writes a temporary sibling and renames it into place; an
existing model there survives any failure.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from tsdiff import __version__
from tsdiff.config import TSDiffConfig
from tsdiff.covariates import Covariates
from tsdiff.data import Freq, Scaler
from tsdiff.errors import ModelFileError, RangeError
from tsdiff.gap_gate import GapGate
from tsdiff.io import current_umask
from tsdiff.network import Denoiser
from tsdiff.pretrained import locate, shipped
from tsdiff.spec import VariableSpec

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.predictor import Predictor

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
META_FILE = "model.json"

P = TypeVar("P", bound="Predictor")


def _meta(model: Predictor) -> dict[str, Any]:
    assert model.scaler is not None and model.freq is not None
    return {
        "format_version": FORMAT_VERSION,
        "tsdiff_version": __version__,
        "variables": model.variables,
        "freq": model.freq.to_str(),
        "time_kind": model.freq.kind,
        "scaler": model.scaler.to_dict(),
        "transformed_scaler": None
        if model.transformed_scaler is None
        else model.transformed_scaler.to_dict(),
        "value_range": model.value_range,
        "spread": model.spread,
        "variable_spread": model.variable_spread,
        "forecast_spread": model.forecast_spread,
        "gate": model.gate,
        "forecast_gate": model.forecast_gate,
        "forecast_gate_far": model.forecast_gate_far,
        "gate_interpolation": model.gate_interpolation,
        "gap_gate": None if model.gap_gate is None else model.gap_gate.to_dict(),
        "quantile_blend": model.quantile_blend,
        "interval_scale": model.interval_scale,
        "forecast_interval_scale": model.forecast_interval_scale,
        "covariates": None if model.covariates is None else model.covariates.to_dict(),
        "spec": None if model.spec is None else {n: s.to_dict() for n, s in model.spec.items()},
        "epoch_log": model.epoch_log,
        "info": model.info,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def save_model(model: Predictor, path: str | Path, weights_dtype: str = "float32") -> Path:
    """Write ``model`` to the directory ``path`` (see the module docstring).
    ``weights_dtype`` "float16" stores the floating weights at half the size (a shipped
    model in the repository); loading casts them back to the network's float32."""
    assert model.net is not None
    from safetensors.torch import save_file

    if weights_dtype not in WEIGHT_DTYPES:
        raise RangeError(
            f"weights_dtype must be one of {sorted(WEIGHT_DTYPES)}, got {weights_dtype!r}"
        )
    store = WEIGHT_DTYPES[weights_dtype]

    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        state = {
            k: (v.to(store) if v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in model.net.state_dict().items()
        }
        save_file(state, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(model.config.to_json())
        meta = json.dumps(_meta(model), indent=2, default=_json_default)
        (tmp / META_FILE).write_text(meta)
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old{os.getpid()}")
            os.replace(dest, old)
            try:
                os.replace(tmp, dest)
            except BaseException:  # the old model survives any failure
                os.replace(old, dest)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def stored_weights_dtype(path: str | Path) -> str:
    """The ``weights_dtype`` a saved model's floating weights are stored in, so a tool that
    rewrites a model (e.g. the model-card script) keeps a float16 file float16."""
    from safetensors import safe_open

    names = {dtype: name for name, dtype in WEIGHT_DTYPES.items()}
    with safe_open(str(locate(path) / WEIGHTS_FILE), framework="pt") as f:
        for key in f.keys():
            if (name := names.get(f.get_tensor(key).dtype)) is not None:
                return name
    return "float32"


def load_model(cls: type[P], path: str | Path) -> P:
    """A ``cls`` (a :class:`Predictor` or subclass) rebuilt from the directory ``path``
    or a shipped model's short name; :class:`ModelFileError` naming what is wrong."""
    from safetensors.torch import load_file

    p = locate(path)
    missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE, META_FILE) if not (p / f).is_file()]
    if not p.is_dir() or missing:
        known = ", ".join(shipped()) or "none"
        raise ModelFileError(
            f"{p} is not a saved tsdiff model (missing: {', '.join(missing) or 'directory'}; "
            f"shipped models: {known})"
        )
    try:
        config = TSDiffConfig.from_saved(json.loads((p / CONFIG_FILE).read_text()))
        meta = json.loads((p / META_FILE).read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"{p}: unsupported model format {meta.get('format_version')!r}")
        model = cls(config)
        _restore(model, meta)
        net = Denoiser(config.network, len(model.variables), config.diffusion.prediction)
        try:
            weights = load_file(str(p / WEIGHTS_FILE))
        except Exception as e:  # safetensors has its own error type for bad files
            raise ModelFileError(f"{p / WEIGHTS_FILE}: cannot read the weights: {e}") from e
        net.load_state_dict(weights)
    except ModelFileError:
        raise
    except (KeyError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{p}: corrupt or incompatible model files: {e}") from e
    net.eval()
    model.net = net
    return model


def _restore(model: Predictor, meta: dict[str, Any]) -> None:
    """The fitted state from ``model.json`` (keys added later default to their absence)."""
    model.variables = list(meta["variables"])
    model.freq = Freq.parse(meta["freq"], meta["time_kind"])
    model.scaler = Scaler.from_dict(meta["scaler"])
    ts = meta.get("transformed_scaler")
    model.transformed_scaler = None if ts is None else Scaler.from_dict(ts)
    vr = meta.get("value_range")
    model.value_range = (list(vr[0]), list(vr[1])) if vr else None
    model.spread = float(meta.get("spread", 1.0))
    vs = meta.get("variable_spread")
    model.variable_spread = None if vs is None else [float(x) for x in vs]
    fs = meta.get("forecast_spread")
    model.forecast_spread = None if fs is None else float(fs)
    sp = meta.get("spec")
    model.spec = None if sp is None else {n: VariableSpec(**d) for n, d in sp.items()}
    g = meta.get("gate")
    model.gate = None if g is None else [float(x) for x in g]
    fg = meta.get("forecast_gate")
    model.forecast_gate = None if fg is None else [float(x) for x in fg]
    fg = meta.get("forecast_gate_far")  # older models: none (the first chunk's at every lead)
    model.forecast_gate_far = None if fg is None else [float(x) for x in fg]
    gi = meta.get("gate_interpolation")
    model.gate_interpolation = None if gi is None else [bool(x) for x in gi]
    gg = meta.get("gap_gate")  # older models: none
    model.gap_gate = None if gg is None else GapGate.from_dict(gg)
    if model.gap_gate is not None and len(model.gap_gate.weight) != len(model.variables):
        raise ValueError(
            f"the gap gate has {len(model.gap_gate.weight)} rows, not one per variable"
        )
    qb = meta.get("quantile_blend")
    model.quantile_blend = None if qb is None else float(qb)
    model.interval_scale = _scale(meta.get("interval_scale"))
    model.forecast_interval_scale = _scale(meta.get("forecast_interval_scale"))
    cv = meta.get("covariates")
    model.covariates = None if cv is None else Covariates.from_dict(cv)
    model.epoch_log = list(meta.get("epoch_log", meta.get("history", [])))  # older: "history"
    model.info = dict(meta.get("info", {}))


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _scale(d: dict[str, Any] | None) -> dict[int, float] | None:
    """Interval factors as saved (JSON keys are strings) → {level: factor}."""
    return None if d is None else {int(k): float(v) for k, v in d.items()}
