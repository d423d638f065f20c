"""Copy a model into ``build/bento-model`` so ``bentoml build`` packages it with the service.

``python -m tsdiff.services.bundle [URI] [--out DIR]``: URI is a model directory or a registry
URI (default: ``$TSDIFF_MODEL_URI``, else the service's default registry model). The
registry origin (name, version, alias, run id, metrics) is kept in ``origin.json``, so
the bento's ``GET /v1/model`` still says which registered version it serves.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tsdiff.services.loading import ORIGIN_FILE, load_with_origin
from tsdiff.services.settings import Settings

DEFAULT_OUT = Path("build") / "bento-model"


def bundle(uri: str, out: str | Path = DEFAULT_OUT) -> Path:
    """Load ``uri`` as the service would; save it and its origin to ``out``."""
    model, origin = load_with_origin(uri)
    dest = model.save(out)
    keep = ("name", "version", "alias", "aliases", "run_id", "metrics")
    (dest / ORIGIN_FILE).write_text(json.dumps({k: origin[k] for k in keep}, indent=2) + "\n")
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tsdiff.services.bundle", description=__doc__)
    p.add_argument("uri", nargs="?", help="model directory or models:/NAME@ALIAS")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"default {DEFAULT_OUT}")
    args = p.parse_args(argv)
    uri = args.uri or Settings.from_env().model_uri
    print(f"bundled {uri} into {bundle(uri, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
