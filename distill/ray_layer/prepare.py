"""Dataset preparation on Ray Data: the executor behind :func:`distill.prepare.prepare`.

Pipeline (one logical stage per function of :mod:`distill.prepare_stages`)::

    from_items(tasks)                  one block per task (a file and up to TASK_CHUNKS chunks)
      .flat_map(decode_chunks)         decode + validate once more, cut windows
      .map_batches(augment_batch)      1 + expansion variants per training chunk
      .map_batches(analyze_batch)      batched torch analysis → (R, 2, n_mels, frames)
      .map_batches(write_batch)        atomic Parquet parts → one small record per part
    iter_rows() on the driver          journal finished files, progress, statistics

Ray fuses these into one operator, so rows pass from stage to stage inside a worker and only the
small records reach the driver. Why not ``Dataset.write_parquet``: it writes non-atomically and
says nothing about when *a source file's* rows are all on disk, which incremental rebuilds and
crash safety both need; writing parts in a stage and journaling on the driver gives both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distill.prepare import PrepareError, PrepareResult, prepare
from distill.prepare_config import PrepareConfig
from distill.prepared import PreparedDataset
from distill.ray_layer import configure_ray_data, ensure_ray
from distill.storage import Store

# batch_size=None everywhere: each stage takes a task's whole block. A numeric batch_size makes
# Ray Data *bundle* input blocks until it has that many rows — and since the input rows are tasks
# (one per block), batch_size=64 put 64 tasks into one Ray task and ran the whole build on one CPU
# (measured: shards appeared only at the end, on a single worker). Stages split their own work.
BLOCK = None


@contextmanager
def _pipeline_errors(doing: str):
    """A failure inside a Ray task (disk full, a bug) becomes one readable line, not a traceback.

    Files finished before the failure are in the journal and are reused by the next run.
    """
    from ray.exceptions import RayError

    try:
        yield
    except RayError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        raise PrepareError(f"the Ray pipeline failed while {doing}: {lines[-1] if lines else type(exc).__name__}; "
                           "finished files are kept, run prepare again") from None


class RayDataExecutor:
    """Runs validation and the build pipeline on Ray Data (local or cluster)."""

    def __init__(self, cfg: PrepareConfig, store: Store, num_cpus: int | None = None):
        ensure_ray(num_cpus)
        configure_ray_data()
        import ray

        self.ray = ray
        self.cfg = cfg
        self.store = store
        if num_cpus and os.environ.get("RAY_ADDRESS"):  # on a shared cluster, cap our own share
            from ray.data import DataContext, ExecutionResources

            DataContext.get_current().execution_options.resource_limits = ExecutionResources(cpu=num_cpus)

    def validate(self, items: list[dict]) -> Iterator[dict]:
        from distill.prepare_stages import validate_file

        ds = self.ray.data.from_items(items, override_num_blocks=min(len(items), 256))
        with _pipeline_errors("validating the files"):
            yield from ds.map(validate_file, fn_kwargs={"cfg": self.cfg}).iter_rows()

    def build(self, tasks: list[dict]) -> Iterator[dict]:
        # Imported here, not at the top: they pull in torch, and deciding that a cache is fresh
        # must not cost the second that importing torch takes.
        from distill.prepare_stages import analyze_batch, augment_batch, decode_chunks, write_batch

        ds = self.ray.data.from_items(tasks, override_num_blocks=len(tasks))
        ds = ds.flat_map(decode_chunks, fn_kwargs={"cfg": self.cfg})
        ds = ds.map_batches(augment_batch, batch_size=BLOCK, fn_kwargs={"cfg": self.cfg})
        ds = ds.map_batches(analyze_batch, batch_size=BLOCK, fn_kwargs={"cfg": self.cfg})
        ds = ds.map_batches(write_batch, batch_size=BLOCK, fn_kwargs={"cfg": self.cfg, "store": self.store})
        with _pipeline_errors("building the cache"):
            yield from ds.iter_rows()


def prepare_dataset(data_dir: str | Path, cache: str | None = None, cfg: PrepareConfig | None = None, *,
                    num_cpus: int | None = None, **options) -> PrepareResult:
    """Bring the prepared cache of ``data_dir`` up to date on Ray Data; the function training calls.

    Ray is started only when some file really has to be processed. ``options`` are those of
    :func:`distill.prepare.prepare` (``yes``, ``confirm``, ``progress``, ``log``, …).
    """
    return prepare(data_dir, cache, cfg,
                   executor_factory=lambda c, s: RayDataExecutor(c, s, num_cpus=num_cpus), **options)


def read_split(prepared: PreparedDataset, split: str):
    """The rows of one split as a ``ray.data.Dataset`` (``spec`` as a tensor column, raw values)."""
    import ray

    ensure_ray()
    configure_ray_data()
    paths = [prepared.store.path(p) for p in prepared.shard_paths(split)]
    if not paths:
        raise ValueError(f"{prepared.store.display()}: the cache has no {split!r} rows")
    return ray.data.read_parquet(paths, filesystem=prepared.store.filesystem)
