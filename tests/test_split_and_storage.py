"""File-level split, atomic storage and the shard format, without Ray."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from distill.prepare_config import PrepareConfig
from distill.shards import build_table, read_shard, shard_metadata, table_to_bytes
from distill.split import TRAIN, VAL, assign_splits
from distill.storage import Store


def test_split_is_by_content_stable_and_keeps_one_for_validation():
    files = {f"f{i}.wav": f"h{i}" for i in range(20)}
    result = assign_splits(files, 0.1)
    assert sorted(result.splits.values()).count(VAL) == 2 and result.note is None
    more = assign_splits({**files, "new.wav": "hnew"}, 0.1)
    moved = [r for r in files if result.splits[r] != more.splits[r]]
    assert len(moved) <= 1  # adding a file moves at most one other file across the split
    dupes = assign_splits({**files, "copy of f3.wav": "h3"}, 0.5)
    assert dupes.splits["copy of f3.wav"] == dupes.splits["f3.wav"]  # same bytes, same side
    few = assign_splits({"a.wav": "1", "b.wav": "2", "c.wav": "3"}, 0.1)
    assert list(few.splits.values()).count(VAL) == 1 and "held out" in few.note
    one = assign_splits({"a.wav": "1"}, 0.1)
    assert one.splits == {"a.wav": TRAIN} and "no validation" in one.note
    assert set(assign_splits(files, 0.0).splits.values()) == {TRAIN}
    with pytest.raises(ValueError, match="val_fraction"):
        assign_splits(files, 1.0)


def test_store_writes_atomically_and_lists(tmp_path):
    store = Store.open(tmp_path / "cache")
    store.write_bytes("a/b/c.bin", b"123")
    store.write_bytes("a/b/c.bin", b"4567")  # replaced whole
    assert store.read_bytes("a/b/c.bin") == b"4567"
    assert store.list_files() == {"a/b/c.bin": 4} and store.list_dirs("a") == ["b"]
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "cache").rglob("*"))
    uri = Store.open(f"file://{tmp_path}/cache")
    assert uri.read_bytes("a/b/c.bin") == b"4567"
    store.delete_dir("a")
    assert store.list_files() == {} and not store.exists("a/b/c.bin")


def test_shard_is_self_describing_and_readable_with_plain_pyarrow(tmp_path):
    cfg = PrepareConfig(chunk_seconds=0.5)
    specs = np.random.default_rng(0).normal(size=(3, *cfg.spec_shape)).astype(np.float32)
    columns = {"source": np.array(["a.wav", "a.wav", "a.wav"], dtype=object), "chunk": np.array([0, 0, 1]),
               "variant": np.array([0, 1, 0]), "split": np.array(["train"] * 3, dtype=object),
               "pitch_semitones": np.array([0, 1.5, 0]), "speed": np.ones(3), "gain": np.ones(3),
               "noise_snr_db": np.array([np.nan, 20.0, np.nan])}
    (tmp_path / "s.parquet").write_bytes(table_to_bytes(build_table(cfg, specs, columns)))
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.column_names == ["spec", "source", "chunk", "variant", "pitch_semitones", "speed", "gain",
                                  "noise_snr_db", "split"]
    assert table.column("noise_snr_db").null_count == 2
    flat = table.column("spec").combine_chunks()
    assert flat.to_numpy_ndarray().shape == (3, *cfg.spec_shape)  # the tensor, rebuilt by pyarrow alone
    rows = read_shard(tmp_path / "s.parquet")
    assert np.abs(rows["spec"] - specs).max() < 0.01  # float16 storage
    assert rows["chunk"].tolist() == [0, 0, 1] and rows["source"].tolist() == ["a.wav"] * 3
    meta = shard_metadata(table)
    assert meta["fingerprint"] == cfg.fingerprint() and meta["config"]["chunk_seconds"] == 0.5
    with pytest.raises(ValueError, match="rows must be"):
        build_table(cfg, specs[:, :, :10], columns)
