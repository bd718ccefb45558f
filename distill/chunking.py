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


def segment_span(starts: list[int], margin: int, width: int) -> tuple[int, int]:
    """``(first sample, length)`` of the audio that the windows of chunks ``starts`` need."""
    if not starts:
        raise ValueError("no chunk starts given")
    first = min(starts) - margin
    return first, max(starts) - margin + width - first


def cut_windows(segment: np.ndarray, segment_start: int, starts: list[int], margin: int, width: int) -> np.ndarray:
    """Windows ``(len(starts), width)`` from ``segment``, which holds the audio from ``segment_start``
    on (see :func:`segment_span`); window i begins ``margin`` samples before chunk i."""
    offsets = [s - margin - segment_start for s in starts]
    if min(offsets) < 0 or max(offsets) + width > len(segment):
        raise ValueError("the segment does not cover every window")
    return np.stack([segment[o:o + width] for o in offsets]).astype(np.float32, copy=False)


def chunk_windows(audio: np.ndarray, starts: list[int], chunk_length: int, margin: int,
                  max_speed: float) -> np.ndarray:
    """``audio (T,)`` in memory → ``(len(starts), W)`` float32 windows; samples outside the file are zeros."""
    width = window_length(chunk_length, margin, max_speed)
    first, length = segment_span(starts, margin, width)
    segment = np.zeros(length, dtype=np.float32)
    lo, hi = max(first, 0), min(first + length, len(audio))
    if hi > lo:
        segment[lo - first:hi - first] = audio[lo:hi]
    return cut_windows(segment, first, starts, margin, width)
