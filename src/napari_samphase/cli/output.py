"""Output folders that appear whole or not at all, and label images in the smallest dtype."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np


def staged_output(out: Path):
    """A temporary folder inside ``out``'s parent; files are moved into ``out`` only
    when every image succeeded, so bad input leaves no partial output behind."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.")


def commit_output(tmp: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(Path(tmp).iterdir()):
        shutil.move(str(f), out / f.name)


def as_uint8_labels(labels: np.ndarray) -> np.ndarray:
    return labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16)
