"""A prepared cache, opened for reading: its config, statistics and shards by split. No Ray here.

Training opens the cache that :func:`distill.ray_layer.prepare.prepare_dataset` keeps up to date
and reads it either with Ray Data (:func:`distill.ray_layer.prepare.read_split`) or, for small
data and tests, with plain pyarrow (:meth:`PreparedDataset.read`). Rows are stored raw; normalise
them with :attr:`PreparedDataset.stats` (training-split statistics).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from distill.manifest import CacheError, load_manifest
from distill.prepare_config import PrepareConfig
from distill.shards import read_shard, table_to_arrays
from distill.split import TRAIN, VAL
from distill.storage import Store


def evenly_spread(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)``, first and last included (all of them
    when ``count >= total``), sorted."""
    if count >= total:
        return list(range(total))
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, count)})


@dataclass(frozen=True)
class PreparedDataset:
    store: Store
    manifest: dict

    @classmethod
    def open(cls, cache: str) -> PreparedDataset:
        """Open the cache at ``cache`` (path or URI); :class:`CacheError` if there is none yet."""
        store = Store.open(cache)
        manifest = load_manifest(store)
        if manifest is None:
            raise CacheError(f"{store.display()}: no prepared cache here; run `distill prepare` first")
        return cls(store, manifest)

    @property
    def config(self) -> PrepareConfig:
        return PrepareConfig.from_dict(self.manifest["config"])

    @property
    def stats(self):
        """Per-(channel, band) :class:`distill.stats.SpectralStats` of the training split."""
        from distill.stats import SpectralStats

        if self.manifest["stats"] is None:
            raise CacheError(f"{self.store.display()}: the cache has no training rows, so no statistics")
        return SpectralStats.from_dict(self.manifest["stats"])

    def shard_paths(self, split: str) -> list[str]:
        """Shard paths (relative to the cache) holding ``split`` rows."""
        if split not in (TRAIN, VAL):
            raise ValueError(f"split must be {TRAIN!r} or {VAL!r}, got {split!r}")
        return [s["path"] for s in self.manifest["shards"] if s["split"] == split]

    def num_rows(self, split: str) -> int:
        return self.manifest["totals"]["rows_train" if split == TRAIN else "rows_val"]

    def read(self, split: str) -> dict[str, np.ndarray]:
        """Every row of ``split`` in memory, read with plain pyarrow (small datasets and tests)."""
        parts = [read_shard(self.store.read_bytes(path)) for path in self.shard_paths(split)]
        if not parts:
            return {}
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def read_clean(self, split: str, limit: int | None = None) -> dict[str, np.ndarray]:
        """The clean (variant 0, un-augmented) rows of ``split``, sorted by (source, chunk).

        Reads shard by shard with a Parquet filter, so memory holds only clean rows, never the
        augmented copies (10× more at the default expansion). ``limit`` keeps an even spread of
        at most that many rows.
        """
        parts = []
        for path in self.shard_paths(split):
            table = pq.read_table(io.BytesIO(self.store.read_bytes(path)), filters=[("variant", "==", 0)])
            if table.num_rows:
                parts.append(table_to_arrays(table))
        if not parts:
            return {}
        rows = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        order = np.lexsort((rows["chunk"], rows["source"]))
        if limit is not None:
            order = order[evenly_spread(len(order), limit)]
        return {name: values[order] for name, values in rows.items()}
