"""The ``.distill`` model file: a trained model you can keep, share and load safely.

One safetensors file. Its tensors are the model's ``state_dict()`` (names as-is, contiguous, CPU);
its header's ``__metadata__`` holds three strings:

* ``distill.format`` — ``"1"`` (:data:`FORMAT_VERSION`);
* ``distill.meta`` — one JSON object with every piece of plain data: name, description, tags,
  created (ISO UTC), distill_version, lineage, config (the full :class:`TrainingConfig`, so every
  representation parameter travels with the weights: synthesis with the wrong hop or n_fft cannot
  happen), stats, analysis, training summary, quality report;
* ``distill.sha256`` — hex sha256 of ``meta_json_bytes + b"\\0" + data_section`` (the bytes after
  the header): any change to the weights or to the meta is caught.

Why safetensors: loading runs no pickle, so a model file from a stranger cannot execute code. We
parse the header ourselves before handing the bytes to safetensors, to say precisely what is wrong
(not a model file, truncated, damaged, made by a newer version, weights that do not fit the config).
The header is written by this module, not by safetensors, because safetensors serialises the
metadata map in a random order (a Rust HashMap): writing it ourselves with sorted keys makes
:func:`to_bytes` deterministic — the same model gives the same bytes, hence the same checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from distill import __version__
from distill.model import SpectrogramVAE
from distill.spectral_config import SpectralConfig
from distill.stats import SpectralStats
from distill.storage import Store
from distill.training_config import TrainingConfig

FORMAT_VERSION = 1
SUFFIX = ".distill"
META_KEYS = ("name", "description", "tags", "created", "distill_version", "lineage", "config", "stats",
             "analysis", "training", "report")
_FORMAT_KEY, _META_KEY, _HASH_KEY = "distill.format", "distill.meta", "distill.sha256"
_MAX_HEADER = 100_000_000  # safetensors' own limit on the header size
_ALIGN = 8  # safetensors pads its header so the data section starts 8-byte aligned


class ModelFileError(ValueError):
    """A model file that cannot be used; the message is ``"<path>: <reason>"``."""


@dataclass(frozen=True, eq=False)
class ModelFile:
    """A model's weights (``name → CPU tensor``) and its plain-data ``meta`` (see the module docstring).

    Treat both as read-only: :func:`with_meta` makes changed copies.
    """

    weights: dict[str, torch.Tensor]
    meta: dict

    @classmethod
    def create(cls, model: torch.nn.Module, config: TrainingConfig, stats: SpectralStats, *, name: str,
               lineage: str, analysis: dict | None = None, training: dict | None = None,
               report: dict | None = None, tags: tuple[str, ...] | list[str] = (),
               description: str = "") -> ModelFile:
        """A model file for ``model`` trained with ``config`` on data with ``stats``.

        ``lineage`` identifies the training run the weights come from (two models' latent spaces are
        compatible iff their lineages are equal). The weights are copied to contiguous CPU tensors,
        so later training steps do not change the file.
        """
        weights = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
        meta = new_meta(config, stats, name=name, lineage=lineage, analysis=analysis, training=training,
                        report=report, tags=tags, description=description)
        mf = cls(weights, meta)
        verify(mf, f"model {name!r}")
        return mf

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def lineage(self) -> str:
        return self.meta["lineage"]

    @property
    def analysis(self) -> dict | None:
        return self.meta.get("analysis")

    @cached_property
    def config(self) -> TrainingConfig:
        return TrainingConfig.from_dict(self.meta["config"])

    @property
    def spectral(self) -> SpectralConfig:
        return self.config.prepare.spectral

    @cached_property
    def stats(self) -> SpectralStats:
        return SpectralStats.from_dict(self.meta["stats"])


def new_meta(config: TrainingConfig, stats: SpectralStats, *, name: str, lineage: str, analysis: dict | None = None,
             training: dict | None = None, report: dict | None = None, tags: tuple[str, ...] | list[str] = (),
             description: str = "") -> dict:
    """The ``meta`` dict of a new model file (created now, by this version of distill)."""
    return {"name": name, "description": description, "tags": list(tags),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "distill_version": __version__,
            "lineage": lineage, "config": config.to_dict(), "stats": stats.to_dict(), "analysis": analysis,
            "training": training, "report": report}


def with_meta(mf: ModelFile, **changes) -> ModelFile:
    """A copy of ``mf`` with the meta keys ``changes`` replaced (weights shared); unknown keys are refused."""
    unknown = sorted(set(changes) - set(META_KEYS))
    if unknown:
        raise ValueError(f"unknown model meta key(s) {unknown}; known: {list(META_KEYS)}")
    return ModelFile(mf.weights, {**mf.meta, **changes})


def build_model(mf: ModelFile, device: str | torch.device = "cpu") -> SpectrogramVAE:
    """The model of ``mf`` with its weights, on ``device``, in eval mode (no dropout)."""
    model = SpectrogramVAE(mf.config.model)
    try:
        model.load_state_dict(mf.weights, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{mf.name}: weights do not fit the config ({_first_line(exc)})") from None
    return model.to(device).eval()


# --- bytes ---------------------------------------------------------------------------------------------------------

def _meta_json(meta: dict) -> str:
    # Sorted keys, no spaces: one spelling per meta, so the checksum (and the file) is reproducible.
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _encode(weights: dict[str, torch.Tensor], meta_json: str, format_version: str) -> bytes:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
    raw = _st_save(tensors)  # tensor entries + data section; its (empty) metadata is replaced below
    size = int.from_bytes(raw[:8], "little")
    entries = json.loads(raw[8:8 + size])
    entries.pop("__metadata__", None)
    data = raw[8 + size:]
    digest = hashlib.sha256(meta_json.encode("utf-8") + b"\0" + data).hexdigest()
    header = {"__metadata__": {_FORMAT_KEY: format_version, _HASH_KEY: digest, _META_KEY: meta_json}, **entries}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % _ALIGN)
    return len(text).to_bytes(8, "little") + text + data


def to_bytes(mf: ModelFile) -> bytes:
    """The file's bytes; deterministic (the same :class:`ModelFile` always gives the same bytes)."""
    missing = [k for k in META_KEYS if k not in mf.meta]
    if missing:
        raise ValueError(f"model meta lacks {missing}")
    try:
        meta_json = _meta_json(mf.meta)
    except TypeError as exc:  # e.g. a tensor left in a report
        raise ValueError(f"model meta must be plain data: {exc}") from None
    return _encode(mf.weights, meta_json, str(FORMAT_VERSION))


def _header(data: bytes, source: str) -> tuple[dict, int]:
    """Parse and check the safetensors header → ``(header, header_length)``; no checksum yet."""
    if len(data) < 9 or data[8:9] != b"{":
        what = "an empty file" if not data else f"{len(data)} bytes that do not start with a model header"
        raise ModelFileError(f"{source}: not a distill model file ({what})")
    size = int.from_bytes(data[:8], "little")
    if size > _MAX_HEADER:
        raise ModelFileError(f"{source}: not a distill model file (no model header)")
    if 8 + size > len(data):
        raise ModelFileError(f"{source}: truncated (the header alone should be {8 + size} bytes, "
                             f"the file has {len(data)})")
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError(f"{source}: damaged or not a distill model file (unreadable header)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or _FORMAT_KEY not in metadata:
        raise ModelFileError(f"{source}: not a distill model file (a safetensors file without distill metadata)")
    _check_format(metadata[_FORMAT_KEY], source)
    return header, size


def _check_format(value, source: str) -> None:
    if not isinstance(value, str) or not value.isdigit():
        raise ModelFileError(f"{source}: unknown model file format {value!r}")
    if int(value) > FORMAT_VERSION:
        raise ModelFileError(f"{source}: made by a newer distill (model file format {value}); this version reads "
                             f"format {FORMAT_VERSION} — update distill to load it")
    if int(value) < FORMAT_VERSION:
        raise ModelFileError(f"{source}: an older model file format ({value}) no longer read by this version "
                             f"(which reads format {FORMAT_VERSION})")


def _parse_meta(text, source: str) -> dict:
    try:
        meta = json.loads(text)
    except (TypeError, ValueError):
        raise ModelFileError(f"{source}: damaged or modified (meta is not valid JSON)") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{source}: damaged or modified (meta is not a JSON object)")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"{source}: missing meta key(s) {missing}")
    types = {"name": str, "description": str, "tags": list, "created": str, "lineage": str, "config": dict,
             "stats": dict}
    for key, kind in types.items():
        if not isinstance(meta[key], kind):
            raise ModelFileError(f"{source}: meta {key} must be a {kind.__name__}, got {type(meta[key]).__name__}")
    for key in ("analysis", "training", "report"):
        if meta[key] is not None and not isinstance(meta[key], dict):
            raise ModelFileError(f"{source}: meta {key} must be an object or null, got {type(meta[key]).__name__}")
    return meta


def from_bytes(data: bytes, source: str) -> ModelFile:
    """Verify and decode a model file's bytes; ``source`` names it in errors. Never unpickles.

    Checks, in order: a distill header, its format version, the length, the checksum, the meta keys,
    the config and statistics, and that the weights are exactly the tensors the config's model has.
    """
    header, size = _header(data, source)
    metadata = header["__metadata__"]
    try:
        expected = 8 + size + max((int(e["data_offsets"][1]) for k, e in header.items() if k != "__metadata__"),
                                  default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        raise ModelFileError(f"{source}: damaged or modified (bad tensor table)") from None
    if len(data) < expected:
        raise ModelFileError(f"{source}: truncated (the header says {expected} bytes, the file has {len(data)})")
    if len(data) > expected:
        raise ModelFileError(f"{source}: damaged or modified ({len(data) - expected} bytes after the end "
                             f"the header says)")
    meta_text, digest = metadata.get(_META_KEY), metadata.get(_HASH_KEY)
    if not isinstance(meta_text, str) or not isinstance(digest, str):
        raise ModelFileError(f"{source}: missing {_META_KEY} or {_HASH_KEY} in the header")
    actual = hashlib.sha256(meta_text.encode("utf-8") + b"\0" + data[8 + size:]).hexdigest()
    if actual != digest:
        raise ModelFileError(f"{source}: damaged or modified (checksum mismatch)")
    meta = _parse_meta(meta_text, source)
    try:
        weights = _st_load(bytes(data))
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{source}: damaged tensor data ({_first_line(exc)})") from None
    mf = ModelFile(weights, meta)
    verify(mf, source)
    return mf


def verify(mf: ModelFile, source: str) -> None:
    """Check that ``mf``'s config and stats parse and its weights are exactly the tensors (names, shapes)
    of the model the config describes; :class:`ModelFileError` naming ``source`` otherwise."""
    try:
        config = mf.config
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{source}: config not readable by this version of distill ({exc})") from None
    try:
        stats = mf.stats
    except ValueError as exc:
        raise ModelFileError(f"{source}: {exc}") from None
    if tuple(stats.mean.shape) != (2, config.model.n_mels):
        raise ModelFileError(f"{source}: stats are {tuple(stats.mean.shape)}, the config needs "
                             f"(2, {config.model.n_mels})")
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        expected = {k: tuple(v.shape) for k, v in SpectrogramVAE(config.model).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in mf.weights.items()}
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    wrong = [f"{k} {got[k]} (needs {expected[k]})" for k in sorted(set(got) & set(expected)) if got[k] != expected[k]]
    if missing or extra or wrong:
        parts = ([f"missing {missing[:3]}{' …' if len(missing) > 3 else ''}"] if missing else []) + \
                ([f"unexpected {extra[:3]}{' …' if len(extra) > 3 else ''}"] if extra else []) + \
                ([f"wrong shape {', '.join(wrong[:3])}"] if wrong else [])
        raise ModelFileError(f"{source}: weights do not fit the config ({'; '.join(parts)})")
    bad = sorted(k for k, v in mf.weights.items() if not v.is_floating_point())
    if bad:
        raise ModelFileError(f"{source}: weights do not fit the config (non-float tensors {bad[:3]})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# --- files ---------------------------------------------------------------------------------------------------------

def _split(location: str | os.PathLike) -> tuple[Store, str]:
    """A file location (path or URI) → (the store of its folder, its name)."""
    text = os.fspath(location)
    if "://" in text:
        folder, _, name = text.rstrip("/").rpartition("/")
    else:
        text = os.path.abspath(os.path.expanduser(text))
        folder, name = os.path.dirname(text), os.path.basename(text)
    if not name:
        raise ModelFileError(f"{location}: not a file name")
    return Store.open(folder), name


def read_location(location: str | os.PathLike) -> bytes:
    """The bytes of a file at a path or URI; :class:`ModelFileError` when it cannot be read."""
    try:
        store, name = _split(location)
        return store.read_bytes(name)
    except FileNotFoundError:
        raise ModelFileError(f"{location}: no such file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{location}: is a folder, not a model file") from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{location}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None


def save(mf: ModelFile, location: str | os.PathLike) -> None:
    """Write ``mf`` to a path or URI atomically (a temporary name, then a rename)."""
    store, name = _split(location)
    store.write_bytes(name, to_bytes(mf))


def load(location: str | os.PathLike) -> ModelFile:
    """Read and verify the model file at a path or URI (see :func:`from_bytes`)."""
    return from_bytes(read_location(location), os.fspath(location))


def read_meta(data_or_path: bytes | str | os.PathLike) -> dict:
    """The meta of a model file from its header only: format checked, checksum *not* (for listings).

    ``data_or_path`` is the file's bytes (or their beginning) or its path/URI; a path is read only as
    far as the header.
    """
    if isinstance(data_or_path, bytes | bytearray | memoryview):
        data, source = bytes(data_or_path), "model file"
    else:
        source = os.fspath(data_or_path)
        data = _read_head(data_or_path)
    header, _ = _header(data, source)
    return _parse_meta(header["__metadata__"].get(_META_KEY), source)


def _read_head(location: str | os.PathLike) -> bytes:
    """The 8-byte length and the header of the file at ``location`` (or all of it, if shorter)."""
    try:
        store, name = _split(location)
        with store.filesystem.open_input_file(store.path(name)) as handle:
            head = handle.read(9)
            size = int.from_bytes(head[:8], "little") if len(head) == 9 and head[8:9] == b"{" else 0
            if not 0 < size <= _MAX_HEADER:
                return head  # not a model header: _header says so
            if 8 + size > handle.size():
                return head + handle.read()  # truncated inside the header: _header reports the real size
            return head + handle.read(size - 1)
    except FileNotFoundError:
        raise ModelFileError(f"{location}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{location}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
