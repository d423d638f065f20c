"""Load the served model together with where it came from (for ``GET /v1/model``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tsdiff.model import TSDiff

ORIGIN_FILE = "origin.json"  # written by tsdiff.services.bundle next to a bundled model's files


def load_with_origin(uri: str, device: str = "cpu") -> tuple[TSDiff, dict[str, Any]]:
    """The model at ``uri`` and its name, version, alias, aliases, run id and metrics.

    A registry alias is resolved to a version first and that exact version loaded, so
    the version reported is the one served even if the alias moves meanwhile. A model
    directory reports its folder name, or the registry origin saved when it was bundled.
    """
    from tsdiff.pretrained import locate
    from tsdiff.registry import list_models, load_model, parse_model_uri

    if not uri.startswith("models:/"):
        path = locate(Path(uri).expanduser()).resolve()  # a folder, or a shipped model's name
        model = load_model(path, device=device)
        origin: dict[str, Any] = {
            "name": path.name,
            "version": None,
            "alias": None,
            "aliases": [],
            "run_id": None,
            "metrics": final_metrics(model),
        }
        if (path / ORIGIN_FILE).is_file():
            origin.update(json.loads((path / ORIGIN_FILE).read_text()))
        return model, {**origin, "uri": str(path)}
    name, ref = parse_model_uri(uri)
    rows = list_models(name)
    if ref.isdigit():
        row = next((r for r in rows if r["version"] == ref), None)
    elif ref == "latest":
        row = rows[-1] if rows else None
    else:
        row = next((r for r in rows if ref in r["aliases"]), None)
    if row is None:
        load_model(uri)  # raises the registry's own error, which lists what exists
        raise LookupError(f"cannot resolve {uri}")
    model = load_model(f"models:/{name}/{row['version']}", device=device)
    return model, {
        "name": name,
        "version": row["version"],
        "alias": None if ref.isdigit() or ref == "latest" else ref,
        "aliases": row["aliases"],
        "run_id": row["run_id"],
        "metrics": row["metrics"] or final_metrics(model),
        "uri": uri,
    }


def final_metrics(model: TSDiff) -> dict[str, Any]:
    """The last training epoch's numbers (what a model directory knows of its training)."""
    final = model.info.get("final") or (model.epoch_log[-1] if model.epoch_log else {})
    return {k: v for k, v in final.items() if k != "epoch"}
