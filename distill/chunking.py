"""Cutting a file into fixed-length chunks, each with the context its augmentation needs.

Every chunk has the same length (the Parquet column is a fixed-shape tensor, and the model wants
equal frames): the last chunk is zero-padded, and a file shorter than one chunk still gives one
chunk, so collections of short clips work. A tail shorter than one analysis window is dropped
when the file has other chunks (it would be a chunk of almost pure padding).
"""

from __future__ import annotations

import math

import numpy as np


def chunk_starts(num_samples: int, chunk_length: int, min_tail: int) -> list[int]:
    """Start sample of every chunk of a ``num_samples``-long file (at least one chunk)."""
    if num_samples <= 0 or chunk_length <= 0:
        raise ValueError(f"need positive lengths, got num_samples={num_samples}, chunk_length={chunk_length}")
    starts = list(range(0, num_samples, chunk_length))
    if len(starts) > 1 and num_samples - starts[-1] < min_tail:
        starts.pop()
    return starts


def window_length(chunk_length: int, margin: int, max_speed: float) -> int:
    """Samples per window: the chunk at the fastest speed plus ``margin`` on each side."""
    return math.ceil(chunk_length * max_speed) + 2 * margin


def chunk_windows(audio: np.ndarray, starts: list[int], chunk_length: int, margin: int,
                  max_speed: float) -> np.ndarray:
    """``audio (T,)`` → ``(len(starts), W)`` float32: window i begins ``margin`` samples before chunk i.

    Samples outside the file are zeros, so every window has the same shape.
    """
    width = window_length(chunk_length, margin, max_speed)
    if not starts:
        raise ValueError("no chunk starts given")
    padded = np.zeros(max(margin + len(audio), max(starts) + width), dtype=np.float32)
    padded[margin:margin + len(audio)] = audio
    # Window i = padded[start_i : start_i + width] because padded is shifted right by margin.
    return np.stack([padded[s:s + width] for s in starts]).astype(np.float32, copy=False)
