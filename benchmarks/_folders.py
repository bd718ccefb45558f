"""What the training benchmarks share: the data folder argument (example data by default)."""

from __future__ import annotations

import sys
from pathlib import Path

from distill.example_data import write_example_data

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = ROOT / "data/example"


def data_folder(arg: str) -> Path | None:
    """``arg`` resolved; the example data is written if it is the default and missing.

    Returns ``None`` after printing an error when another folder does not exist.
    """
    folder = Path(arg).resolve()
    if not folder.exists():
        if folder != EXAMPLE_DIR.resolve():
            print(f"error: {folder} does not exist", file=sys.stderr)
            return None
        write_example_data(folder)
    return folder
