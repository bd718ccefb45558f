"""File-level train/validation split that never leaks a recording across the split.

The split is decided per *content*: files with identical bytes (the same take copied twice) always
land on the same side. Each content gets a score from a salted hash; the ``k = round(fraction·n)``
lowest scores are validation. Scores do not depend on the other files, so adding or removing
a file moves at most one other file across the split and leaves the rest (and their shards) alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

TRAIN = "train"
VAL = "val"


@dataclass(frozen=True)
class SplitResult:
    splits: dict[str, str]  # relative path → "train" | "val"
    note: str | None  # said to the user when the rule had to bend (very few files)


def _score(seed: int, content_hash: str) -> str:
    return hashlib.sha256(f"{seed}:{content_hash}".encode()).hexdigest()


def assign_splits(content_hashes: dict[str, str], val_fraction: float, seed: int = 0) -> SplitResult:
    """Split files (``relative path → content hash``) into train and validation.

    With at least two distinct contents and ``val_fraction > 0``, validation gets at least one and
    training keeps at least one. With one content there is nothing to hold out: all train, and a note.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    contents = sorted(set(content_hashes.values()), key=lambda h: (_score(seed, h), h))
    n = len(contents)
    note = None
    k = round(val_fraction * n)
    if val_fraction > 0 and n >= 2:
        if k == 0:
            note = (f"only {n} distinct files: {val_fraction:.0%} would be none, so 1 file is held out "
                    f"for validation anyway")
        k = min(max(k, 1), n - 1)
    elif val_fraction > 0 and n == 1:
        note = "only 1 distinct file: no validation split (validation metrics will be unavailable)"
        k = 0
    held_out = set(contents[:k])
    splits = {rel: VAL if h in held_out else TRAIN for rel, h in content_hashes.items()}
    return SplitResult(splits, note)
