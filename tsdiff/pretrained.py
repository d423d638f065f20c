"""Models the project ships, loadable by a short name wherever a model is accepted.

``TSDiff.load("physionet-vitals")`` (and so ``tsdiff impute physionet-vitals ...``, the
service and the pipelines) finds the model in the package when no folder of that name
exists; a folder of that name in the working directory wins. Each model folder holds
``MODEL_CARD.md``: data and split, the command, training time, test metrics, limits.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).parent / "pretrained_models"


def shipped() -> list[str]:
    """Short names of the models in the package."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "config.json").is_file())


def locate(name_or_path: str | Path) -> Path:
    """The folder a model reference names: an existing path, else a shipped model's
    folder, else the path as given (the loader then names what is missing)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    if str(name_or_path) in shipped():
        return SHIPPED_DIR / str(name_or_path)
    return p
