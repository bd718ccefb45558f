"""The Parquet shard format: one row per (source file, chunk, variant); readable with plain pyarrow.

Columns (documented in the README too):

==================  ===========================================  ===============================
``spec``            fixed_shape_tensor<float16|float32>[2, n_mels, frames]  raw (not normalised)
                    representation: channel 0 log amplitude, channel 1 IF in [-1, 1]
``source``          string   path of the source file, relative to the dataset folder, ``/``-separated
``chunk``           int32    chunk index within the file (chunk i starts at i · chunk_seconds)
``variant``         int16    0 = clean, 1..expansion = augmented
``pitch_semitones`` float32  pitch shift applied (0 = none)
``speed``           float32  tempo factor applied (1 = none)
``gain``            float32  linear gain applied (1 = none)
``noise_snr_db``    float32  SNR of the added white noise; null = no noise
``split``           string   "train" or "val"
==================  ===========================================  ===============================

The schema metadata key ``distill`` holds JSON with the cache format version, the config
fingerprint and the full preparation config, so a single shard describes itself.

Rows are stored raw and normalised when read (:class:`distill.stats.SpectralStats`): statistics
change whenever a file is added, and rewriting every shard for that would defeat incremental builds.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distill.prepare_config import CACHE_FORMAT_VERSION, PrepareConfig

SPEC = "spec"
PARAM_COLUMNS = ("pitch_semitones", "speed", "gain", "noise_snr_db")
METADATA_KEY = b"distill"
# zstd level 1: as fast to write as no compression here and about half the bytes on real audio.
# No dictionary and no min/max statistics for the tensor column: Parquet stores it as a list of
# 48k floats per row, and trying to dictionary-encode or summarise those values tripled write time
# (measured: 127 ms → 45 ms for 88 rows). Small columns keep both (useful for filtering).
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1
SMALL_COLUMNS = ["source", "chunk", "variant", "split"]


def shard_schema(cfg: PrepareConfig) -> pa.Schema:
    """The Arrow schema of every shard built with ``cfg``."""
    value_type = pa.float16() if cfg.storage_dtype == "float16" else pa.float32()
    metadata = {"format_version": CACHE_FORMAT_VERSION, "fingerprint": cfg.fingerprint(), "config": cfg.to_dict(),
                "spec_layout": "(2, n_mels, frames): channel 0 = ln(amplitude + log_floor), channel 1 = IF in [-1, 1]"}
    return pa.schema([
        pa.field(SPEC, pa.fixed_shape_tensor(value_type, list(cfg.spec_shape))),
        pa.field("source", pa.string()),
        pa.field("chunk", pa.int32()),
        pa.field("variant", pa.int16()),
        *(pa.field(name, pa.float32()) for name in PARAM_COLUMNS),
        pa.field("split", pa.string()),
    ], metadata={METADATA_KEY: json.dumps(metadata).encode()})


def build_table(cfg: PrepareConfig, specs: np.ndarray, columns: dict[str, np.ndarray]) -> pa.Table:
    """Rows → an Arrow table with :func:`shard_schema`. ``specs`` is ``(R, 2, n_mels, frames)``.

    ``columns`` holds ``source``, ``chunk``, ``variant``, ``split`` and the parameter columns, each
    ``(R,)``; a NaN ``noise_snr_db`` becomes null.
    """
    schema = shard_schema(cfg)
    if specs.shape[1:] != cfg.spec_shape:
        raise ValueError(f"spectrogram rows must be {cfg.spec_shape}, got {specs.shape[1:]}")
    dtype = np.float16 if cfg.storage_dtype == "float16" else np.float32
    tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(specs, dtype=dtype))
    arrays = [tensor]
    for fld in list(schema)[1:]:
        values = np.asarray(columns[fld.name])
        mask = np.isnan(values) if fld.name == "noise_snr_db" else None
        arrays.append(pa.array(values.tolist() if values.dtype == object else values, type=fld.type, mask=mask))
    return pa.Table.from_arrays(arrays, schema=schema)


def table_to_bytes(table: pa.Table) -> bytes:
    """Serialise one shard (a single row group: shards are small, and readers then read it whole)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL,
                   use_dictionary=["source", "split"], write_statistics=SMALL_COLUMNS,
                   row_group_size=max(1, table.num_rows))
    return sink.getvalue()


def read_shard(source) -> dict[str, np.ndarray]:
    """Read one shard (a path, a file-like object or bytes) with plain pyarrow.

    Returns ``spec`` as float32 ``(R, 2, n_mels, frames)`` and every other column as a numpy array
    (``noise_snr_db`` with NaN for null).
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    table = pq.read_table(source)
    return table_to_arrays(table)


def table_to_arrays(table: pa.Table) -> dict[str, np.ndarray]:
    """An Arrow table of shard rows → numpy arrays (see :func:`read_shard`)."""
    spec = table.column(SPEC).combine_chunks()
    out = {SPEC: spec.to_numpy_ndarray().astype(np.float32)}
    for name in table.column_names:
        if name == SPEC:
            continue
        column = table.column(name)
        if pa.types.is_floating(column.type):
            out[name] = column.to_numpy().astype(np.float32)  # nulls become NaN
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out


def shard_metadata(table_or_schema) -> dict:
    """The ``distill`` JSON of a shard's schema (format version, fingerprint, config)."""
    schema = getattr(table_or_schema, "schema", table_or_schema)
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError("not a distill shard: schema metadata has no 'distill' entry")
    return json.loads(raw)
