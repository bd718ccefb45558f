"""The generation history: every take made (CLI with ``--history``, the UI, the HTTP endpoint), kept
with its audio, everything that made it and a spectrogram thumbnail, so takes can be found again,
heard again and compared A/B.

Layout (a local folder or a storage URI, :class:`distill.storage.Store`)::

    index.json (+ index.json.bak)   {"version": 1, "entries": [entry, ...]}, oldest first (distill.json_index)
    entries/<id>/take.flac          the audio, FLAC 24-bit: lossless for the ±1 float takes, about half a WAV
    entries/<id>/spectrogram.png    distill.thumbnail.spectrogram_png
    entries/<id>/entry.json         the entry itself, so the index can always be rebuilt from the folders

``<id>`` is ``YYYYMMDD-HHMMSS-<6 hex>`` in UTC: five hex digits of microseconds and one random, so ids
sort by creation time (also within one second) and two processes practically never draw the same one
(a folder that exists already is never reused). ``add`` writes the folder's files first, ``entry.json``
last (a folder with ``entry.json`` and ``take.flac`` is a complete entry), then updates the index under
its lock: read, append, prune, write. Samples beyond full scale are clipped in ``take.flac``; the
measures are those of the audio as given, so an over shows in them.

The bound: after each ``add``, while there are more than ``max_entries`` entries or they hold more than
``max_mb`` megabytes (10⁶ bytes of audio, thumbnail and entry.json), the oldest is removed (index
first, then its folder, ``entry.json`` first). A take larger than the whole bound is still recorded and
is then the only entry: a take the user just made is never refused for housekeeping reasons.

Reading reconciles the index with the folders, and repairs what it finds (with a :class:`HistoryWarning`):
a damaged index is replaced by its backup (or rebuilt from the folders when both are damaged); entries
whose folder or audio is gone are dropped; complete folders the index lacks are added back (the newest
take when the index fell back to a backup, or one a crash left between its folder and the index). A
folder without ``entry.json`` or audio is an ``add`` in progress while its files are younger than
:data:`LEFTOVER_SECONDS`, and a crash leftover after that: it is then deleted (with a warning) the next
time the history is written. A folder whose ``entry.json`` is damaged keeps its audio, so it is never
deleted: it is left out with a warning on every read, for the user to repair or delete. Readers take
the lock too (waiting briefly) so that they never see a write half done; when they cannot (another
process holds it, a read-only folder, object storage where locks are advisory) they read without it.

Entries are referred to by full id, a unique prefix or suffix of the id (≥ 4 characters), ``latest``,
or a position counted from the newest (``1`` = newest, ``2`` … up to 999).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import secrets
import threading
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow.fs as pafs
import soundfile as sf

from distill.json_index import LOCK_WAIT_SECONDS, IndexWriteError, JsonIndex
from distill.settings import DEFAULT_HISTORY_MAX_ENTRIES, DEFAULT_HISTORY_MAX_MB
from distill.storage import TEMP_PREFIX, Store
from distill.take_measures import MEASURE_BLOCK, measure
from distill.thumbnail import spectrogram_png

DEFAULT_MAX_ENTRIES = DEFAULT_HISTORY_MAX_ENTRIES  # 200 takes
DEFAULT_MAX_MB = DEFAULT_HISTORY_MAX_MB  # 2000 megabytes
MEGABYTE = 1_000_000  # bytes
INDEX = "index.json"
INDEX_VERSION = 1
ENTRIES = "entries"
AUDIO_FILE = "take.flac"
THUMBNAIL_FILE = "spectrogram.png"
ENTRY_FILE = "entry.json"
MIN_PREFIX = 4  # shortest id prefix/suffix accepted as a reference
MAX_POSITION_DIGITS = MIN_PREFIX - 1  # "1" … "999" are positions; 4+ characters are ids
LEFTOVER_SECONDS = 60.0  # an incomplete folder this old is a crash leftover, not an add in progress
READ_LOCK_WAIT_SECONDS = 2.0  # a reader waits this long for a writer, then reads without the lock
MAX_CHANNELS = 8  # FLAC's limit
MAX_SAMPLE_RATE = 655_350  # FLAC's limit, Hz
_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
_SOURCE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_clock = threading.Lock()
_last_created = datetime.min.replace(tzinfo=timezone.utc)


class HistoryError(ValueError):
    """A history operation that cannot be done; the message names the entry, argument or file, and why."""


class UnknownEntry(HistoryError):
    """No entry matches a reference."""


class AmbiguousEntry(HistoryError):
    """Several entries match a reference; ``candidates`` lists them, newest first."""

    def __init__(self, message: str, candidates: list[HistoryEntry]):
        super().__init__(message)
        self.candidates = candidates


class HistoryWarning(UserWarning):
    """Something the history repaired or left out on its own (index recovered, entries dropped or added back)."""


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded take. Paths are relative to the history root."""

    id: str  # "YYYYMMDD-HHMMSS-<6 hex>" (UTC), sortable by time
    created: str  # ISO 8601 UTC, microseconds
    source: str  # "cli" | "ui" | "serve" | another short word
    model: dict  # {"name", "id", "lineage"}
    parameters: dict  # everything that made the take; opaque JSON to the history
    duration: float  # seconds
    sample_rate: int  # Hz
    channels: int
    bytes: int  # take.flac + spectrogram.png + entry.json
    audio: str  # "entries/<id>/take.flac"
    thumbnail: str  # "entries/<id>/spectrogram.png"
    measures: dict  # distill.take_measures.measure()

    def to_dict(self) -> dict:
        return {"id": self.id, "created": self.created, "source": self.source, "model": self.model,
                "parameters": self.parameters, "duration": self.duration, "sample_rate": self.sample_rate,
                "channels": self.channels, "bytes": self.bytes, "audio": self.audio, "thumbnail": self.thumbnail,
                "measures": self.measures}

    @classmethod
    def from_dict(cls, data: dict) -> HistoryEntry:
        """The entry of ``data``; ``ValueError``/``KeyError``/``TypeError`` when it is not a valid one."""
        entry = cls(**{name: data[name] for name in cls.__dataclass_fields__})
        if not isinstance(entry.id, str) or not _ID.match(entry.id):
            raise ValueError(f"bad entry id {entry.id!r}")
        if (entry.audio, entry.thumbnail) != (_path(entry.id, AUDIO_FILE), _path(entry.id, THUMBNAIL_FILE)):
            raise ValueError(f"entry {entry.id}: files {entry.audio!r}, {entry.thumbnail!r} are not its own")
        for name, kind in (("created", str), ("source", str), ("model", dict), ("parameters", dict),
                           ("measures", dict), ("sample_rate", int), ("channels", int), ("bytes", int)):
            if not isinstance(getattr(entry, name), kind) or isinstance(getattr(entry, name), bool):
                raise TypeError(f"entry {entry.id}: {name} must be {kind.__name__}, got {getattr(entry, name)!r}")
        if not isinstance(entry.duration, (int, float)) or min(entry.duration, entry.sample_rate - 1,
                                                                entry.channels - 1, entry.bytes) < 0:
            raise ValueError(f"entry {entry.id}: duration, sample_rate, channels or bytes out of range")
        return entry


class History:
    """A history folder (see the module docstring). Open with :meth:`open`."""

    def __init__(self, store: Store, max_entries: int = DEFAULT_MAX_ENTRIES, max_mb: float = DEFAULT_MAX_MB):
        self.store = store
        self.max_entries = _bound("max_entries", max_entries)
        self.max_mb = _bound("max_mb", max_mb)
        self.index = JsonIndex(store, INDEX, "history index", _validate_index)

    @classmethod
    def open(cls, location: str | os.PathLike | None = None, max_entries: int | None = None,
             max_mb: float | None = None) -> History:
        """The history at ``location`` (folder or URI); each ``None`` comes from the settings
        (:func:`distill.settings.load_settings`: ``history``, ``history_max_entries``, ``history_max_mb``)."""
        if location is None or max_entries is None or max_mb is None:
            from distill.settings import load_settings

            settings = load_settings(history=None if location is None else os.fspath(location))
            location = settings.history if location is None else location
            max_entries = settings.history_max_entries if max_entries is None else max_entries
            max_mb = settings.history_max_mb if max_mb is None else max_mb
        try:
            store = Store.open(location)
            is_file = store.filesystem.get_file_info(store.root).type == pafs.FileType.File
        except (ValueError, OSError) as exc:
            raise HistoryError(str(exc)) from None
        if is_file:
            raise HistoryError(f"{store.display()}: is a file; the history is a folder")
        return cls(store, max_entries, max_mb)

    @property
    def location(self) -> str:
        return self.store.display()

    # --- reading ---------------------------------------------------------------------------------------------------

    def list(self, model: str | None = None, limit: int | None = None) -> list[HistoryEntry]:
        """Entries newest first; ``model`` keeps those of the model with that name or id; at most ``limit``."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise HistoryError(f"limit: expected a whole number ≥ 0, got {limit!r}")
        entries = self._read()[::-1]
        if model is not None:
            entries = [e for e in entries if model in (e.model.get("name"), e.model.get("id"))]
        return entries if limit is None else entries[:limit]

    def get(self, ref: str) -> HistoryEntry:
        """The entry ``ref`` names: full id, unique id prefix or suffix (≥ 4 characters), ``latest``, or a
        position from the newest (``1`` = newest). :class:`UnknownEntry`/:class:`AmbiguousEntry` name ``ref``."""
        return self._resolve(self._read(), ref)

    def read_audio(self, entry: HistoryEntry | str) -> tuple[np.ndarray, int]:
        """The take's audio ``(T, C)`` float32 and its sample rate."""
        entry = self.get(entry) if isinstance(entry, str) else entry
        try:
            source = self.store.path(entry.audio) if self.store.is_local else io.BytesIO(
                self.store.read_bytes(entry.audio))
            audio, rate = sf.read(source, dtype="float32", always_2d=True)
        except (OSError, RuntimeError) as exc:  # soundfile's LibsndfileError is a RuntimeError
            raise HistoryError(f"{self.store.display(entry.audio)}: cannot read the audio of {entry.id} ({exc})"
                               ) from None
        return audio, int(rate)

    def audio_location(self, entry: HistoryEntry | str) -> str:
        """Where the take's FLAC is: an absolute path (local history) or a URI, for players and the UI."""
        entry = self.get(entry) if isinstance(entry, str) else entry
        return self.store.path(entry.audio) if self.store.is_local else self.store.display(entry.audio)

    def read_thumbnail(self, entry: HistoryEntry | str) -> bytes:
        """The take's spectrogram PNG."""
        entry = self.get(entry) if isinstance(entry, str) else entry
        try:
            return self.store.read_bytes(entry.thumbnail)
        except OSError as exc:
            raise HistoryError(f"{self.store.display(entry.thumbnail)}: cannot read the thumbnail of {entry.id} "
                               f"({exc})") from None

    def compare(self, a: str, b: str) -> dict:
        """A/B data of two entries: ``{"a": entry dict, "b": entry dict, "differences": {dotted parameter:
        [a value, b value]} (only those that differ; ``None`` where one lacks it), "measures": {name: {"a",
        "b", "difference": b - a (None unless both are numbers)}}}``."""
        entries = self._read()
        first, second = self._resolve(entries, a), self._resolve(entries, b)
        pa, pb = _flatten(first.parameters), _flatten(second.parameters)
        differences = {key: [pa.get(key), pb.get(key)] for key in sorted(pa.keys() | pb.keys())
                       if pa.get(key) != pb.get(key) or (key in pa) != (key in pb)}
        measures = {}
        for name in [*first.measures, *(n for n in second.measures if n not in first.measures)]:
            x, y = first.measures.get(name), second.measures.get(name)
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
            measures[name] = {"a": x, "b": y, "difference": y - x if numbers else None}
        return {"a": first.to_dict(), "b": second.to_dict(), "differences": differences, "measures": measures}

    # --- changing --------------------------------------------------------------------------------------------------

    def add(self, audio: np.ndarray, sample_rate: int, parameters: dict, model: dict, source: str = "cli"
            ) -> HistoryEntry:
        """Record a take ``(T,)`` or ``(T, C)`` (float, ±1 full scale) made with ``parameters`` by ``model``
        (``{"name", "id", "lineage"}``); prunes the oldest entries beyond the bound. Returns the new entry."""
        x = _checked_audio(audio, sample_rate)
        parameters, model = _plain_json(parameters, "parameters"), _plain_json(model, "model")
        if not isinstance(source, str) or not _SOURCE.match(source):
            raise HistoryError(f"source: expected a short lower-case word (cli, ui, serve …), got {source!r}")
        entry_id, created = self._new_id()
        measures = measure(x, sample_rate)
        flac = io.BytesIO()
        sf.write(flac, x, sample_rate, format="FLAC", subtype="PCM_24")  # libsndfile clips beyond ±1
        flac, png = flac.getbuffer(), spectrogram_png(x, sample_rate)  # a view: no copy of a long take
        entry = HistoryEntry(id=entry_id, created=created, source=source, model=model, parameters=parameters,
                             duration=x.shape[0] / sample_rate, sample_rate=int(sample_rate), channels=x.shape[1],
                             bytes=0, audio=_path(entry_id, AUDIO_FILE), thumbnail=_path(entry_id, THUMBNAIL_FILE),
                             measures=measures)
        entry, document = _sized(entry, len(flac) + len(png))
        try:
            self.store.write_bytes(entry.audio, flac)
            self.store.write_bytes(entry.thumbnail, png)
            self.store.write_bytes(_path(entry_id, ENTRY_FILE), document)  # last: the folder is complete
        except OSError as exc:
            self._remove_folder(entry_id, quiet=True)
            raise HistoryError(f"{self.store.display(_path(entry_id))}: cannot record the take "
                               f"({exc.strerror or exc})") from None
        with self._locked():
            entries = sorted([*self._reconciled(held=True, adding=entry_id), entry], key=lambda e: e.id)
            removed = []
            while len(entries) > 1 and (len(entries) > self.max_entries
                                        or sum(e.bytes for e in entries) > self.max_mb * MEGABYTE):
                removed.append(entries.pop(0))
            self._write(entries)
            for old in removed:
                self._remove_folder(old.id)
        return entry

    def delete(self, ref: str) -> HistoryEntry:
        """Remove one entry (index first, then its folder); returns it."""
        with self._locked():
            entries = self._reconciled(held=True)
            entry = self._resolve(entries, ref)
            self._write([e for e in entries if e.id != entry.id])
            self._remove_folder(entry.id)
        return entry

    def clear(self) -> int:
        """Remove every entry; returns how many there were."""
        with self._locked():
            entries = self._reconciled(held=True)
            self._write([])
            for entry in entries:
                self._remove_folder(entry.id)
        return len(entries)

    # --- internals -------------------------------------------------------------------------------------------------

    def _new_id(self) -> tuple[str, str]:
        """A fresh id and its creation time; strictly later than any this process made before."""
        global _last_created
        with _clock:
            now = max(datetime.now(timezone.utc), _last_created + timedelta(microseconds=1))
            while True:
                entry_id = f"{now:%Y%m%d-%H%M%S}-{now.microsecond:05x}{secrets.randbelow(16):x}"
                if not self.store.exists(_path(entry_id)):
                    break
                now += timedelta(microseconds=1)
            _last_created = now
        return entry_id, now.isoformat(timespec="microseconds")

    @contextmanager
    def _locked(self, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
        """Hold the index lock; :class:`HistoryError` names the holder or the reason when it cannot be had."""
        with ExitStack() as stack:
            try:
                stack.enter_context(self.index.locked(wait))
            except IndexWriteError as exc:
                raise HistoryError(str(exc)) from None
            yield

    def _read(self) -> list[HistoryEntry]:
        """The entries, oldest first, read under the lock when it can be had (then repairs are written)."""
        if self.store.filesystem.get_file_info(self.store.root).type != pafs.FileType.Directory:
            return []  # nothing recorded yet: nothing to read, and nothing is created by reading
        with ExitStack() as stack:
            try:
                stack.enter_context(self._locked(READ_LOCK_WAIT_SECONDS))
                held = True
            except HistoryError:
                held = False  # a slow writer, a read-only folder: read what is there
            return self._reconciled(held)

    def _reconciled(self, held: bool, adding: str = "") -> list[HistoryEntry]:
        """The index reconciled with the entry folders (module docstring), oldest first, without the entry
        being added (``adding``). With the lock ``held``, a changed index is written back (best effort) and
        old crash leftovers are deleted."""
        found = self.index.read()
        notes = [found.note] if found.note else []
        indexed = [HistoryEntry.from_dict(d) for d in found.data["entries"]] if found.data else []
        indexed = [e for e in indexed if e.id != adding]  # a reader may have indexed its folder already
        folders = self._folders()
        folders.pop(adding, None)
        complete = {name for name, files in folders.items() if {ENTRY_FILE, AUDIO_FILE} <= files}
        entries = [e for e in indexed if e.id in complete]
        changed = bool(found.note) or len(entries) < len(indexed)
        for e in indexed:
            if e.id not in complete:
                notes.append(f"{self.store.display(_path(e.id))}: folder or audio gone; dropped {e.id} from the index")
        known = {e.id for e in entries}
        added = []
        for name in sorted(complete - known):
            entry = self._entry_file(name)
            if entry is None:
                continue
            entries.append(entry)
            changed = True
            if found.note or _age(entry.created) > LEFTOVER_SECONDS:
                added.append(name)  # a repair worth telling; a younger one is an add finishing now
        if added:
            one = len(added) == 1
            notes.append(f"{self.store.display(INDEX)}: added back {len(added)} entr{'y' if one else 'ies'} from "
                         f"{'its folder' if one else 'their folders'} ({', '.join(added)})")
        for name in sorted(set(folders) - complete):
            if not _ID.match(name):
                notes.append(f"{self.store.display(_path(name))}: not a history entry folder; ignored")
            elif held and self._age_of_folder(name) > LEFTOVER_SECONDS:
                self._remove_folder(name, quiet=True)
                notes.append(f"{self.store.display(_path(name))}: removed an incomplete entry (no {ENTRY_FILE} "
                             f"or {AUDIO_FILE}) left by an interrupted add")
        for note in notes:
            warnings.warn(HistoryWarning(note), stacklevel=4)
        entries.sort(key=lambda e: e.id)
        if held and changed:
            try:
                self._write(entries)
            except ValueError:
                pass  # a read-only history is still readable; the next write repairs it
        return entries

    def _folders(self) -> dict[str, set[str]]:
        """Each folder in ``entries/`` → the names of its files (temporary files of writes left out)."""
        folders: dict[str, set[str]] = {name: set() for name in self.store.list_dirs(ENTRIES)}
        for path in self.store.list_files(ENTRIES):
            parts = path.split("/")
            if len(parts) == 3 and not parts[2].startswith(TEMP_PREFIX):
                folders.setdefault(parts[1], set()).add(parts[2])
        return folders

    def _entry_file(self, name: str) -> HistoryEntry | None:
        path = _path(name, ENTRY_FILE)
        try:
            entry = HistoryEntry.from_dict(json.loads(self.store.read_bytes(path).decode("utf-8")))
            if entry.id != name:
                raise ValueError(f"it describes {entry.id}, not {name}")
            return entry
        except (OSError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
            warnings.warn(HistoryWarning(f"{self.store.display(path)}: damaged ({type(exc).__name__}: {exc}); "
                                         f"the take in {self.store.display(_path(name))} is left out of the history "
                                         "(repair or delete that folder)"), stacklevel=5)
            return None

    def _age_of_folder(self, name: str) -> float:
        """Seconds since anything in the folder last changed (``inf`` if nothing says)."""
        selector = pafs.FileSelector(self.store.path(_path(name)), recursive=True, allow_not_found=True)
        infos = [self.store.filesystem.get_file_info(self.store.path(_path(name))),
                 *self.store.filesystem.get_file_info(selector)]
        times = [i.mtime for i in infos if i.mtime is not None]
        return (datetime.now(timezone.utc) - max(times)).total_seconds() if times else math.inf

    def _write(self, entries: list[HistoryEntry]) -> None:
        try:
            self.index.write({"version": INDEX_VERSION, "entries": [e.to_dict() for e in entries]})
        except OSError as exc:
            raise HistoryError(f"{self.index.display()}: cannot write the history index ({exc.strerror or exc})"
                               ) from None

    def _remove_folder(self, name: str, quiet: bool = False) -> None:
        """Delete ``entries/<name>``, ``entry.json`` first, so a half-deleted folder is never taken for an entry."""
        try:
            self.store.delete_file(_path(name, ENTRY_FILE))
            self.store.delete_dir(_path(name))
        except OSError as exc:
            if not quiet:
                warnings.warn(HistoryWarning(f"{self.store.display(_path(name))}: could not be deleted "
                                             f"({exc.strerror or exc})"), stacklevel=4)

    def _resolve(self, entries: list[HistoryEntry], ref: str) -> HistoryEntry:
        text = ref.strip().lower() if isinstance(ref, str) else ""
        if not text:
            raise UnknownEntry(f"no history entry given ({ref!r}): an id, a unique id prefix or suffix of "
                               f"≥ {MIN_PREFIX} characters, 'latest', or a position (1 = newest)")
        newest = entries[::-1]
        if text == "latest" or (text.isdigit() and len(text) <= MAX_POSITION_DIGITS):
            position = 1 if text == "latest" else int(text)
            if 1 <= position <= len(newest):
                return newest[position - 1]
            raise UnknownEntry(f"no history entry {ref!r}: the history {self.location} holds "
                               f"{len(newest)} entr{'y' if len(newest) == 1 else 'ies'}")
        for entry in newest:
            if entry.id == text:
                return entry
        matches = [e for e in newest if len(text) >= MIN_PREFIX and (e.id.startswith(text) or e.id.endswith(text))]
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(e.id for e in matches[:5]) + (", …" if len(matches) > 5 else "")
            raise AmbiguousEntry(f"{ref!r} matches {len(matches)} history entries ({shown}); give more of the id",
                                 matches)
        raise UnknownEntry(f"no history entry {ref!r} in {self.location}: give an id (YYYYMMDD-HHMMSS-xxxxxx) or "
                           f"≥ {MIN_PREFIX} characters of its start or end, 'latest', or a position (1 = newest)")


def _path(name: str, file: str = "") -> str:
    return f"{ENTRIES}/{name}/{file}" if file else f"{ENTRIES}/{name}"


def _age(created: str) -> float:
    try:
        return (datetime.now(timezone.utc) - datetime.fromisoformat(created)).total_seconds()
    except (TypeError, ValueError):
        return math.inf


def _bound(name: str, value) -> int | float:
    if name == "max_entries":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise HistoryError(f"max_entries: expected a whole number ≥ 1, got {value!r}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise HistoryError(f"max_mb: expected a number of megabytes > 0, got {value!r}")
    return float(value)


def _validate_index(data: dict) -> None:
    if data.get("version") != INDEX_VERSION:
        raise ValueError(f"version {data.get('version')!r}, expected {INDEX_VERSION}")
    ids = [HistoryEntry.from_dict(e).id for e in data["entries"]]
    if len(set(ids)) != len(ids):
        raise ValueError("an entry id appears twice")


def _checked_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(T, C)`` float32 of ``audio``; :class:`HistoryError` naming the argument otherwise."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or not 1 <= sample_rate <= MAX_SAMPLE_RATE:
        raise HistoryError(f"sample_rate: expected a whole number of Hz from 1 to {MAX_SAMPLE_RATE} (FLAC's limit), "
                           f"got {sample_rate!r}")
    x = np.asarray(audio)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] == 0 or not 1 <= x.shape[1] <= MAX_CHANNELS:
        raise HistoryError(f"audio: expected samples (T,) or (T, C) with T ≥ 1 and 1 ≤ C ≤ {MAX_CHANNELS}, "
                           f"got shape {np.shape(audio)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise HistoryError(f"audio: expected float samples in ±1, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    for start in range(0, x.shape[0], MEASURE_BLOCK):
        if not np.isfinite(x[start:start + MEASURE_BLOCK]).all():
            raise HistoryError("audio: contains NaN or infinite samples")
    return x


def _plain_json(value, name: str) -> dict:
    """``value`` as plain JSON (numpy scalars and arrays become numbers and lists); :class:`HistoryError` if
    it is not a dict or cannot be JSON (NaN, objects)."""
    def numpy_values(item):
        if isinstance(item, (np.generic, np.ndarray)):
            return item.tolist()
        raise TypeError(f"{type(item).__name__} is not JSON")

    if not isinstance(value, dict):
        raise HistoryError(f"{name}: expected a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=numpy_values))
    except (TypeError, ValueError) as exc:
        raise HistoryError(f"{name}: not plain JSON ({exc})") from None


def _sized(entry: HistoryEntry, other_bytes: int) -> tuple[HistoryEntry, bytes]:
    """The entry with ``bytes`` counting its own entry.json too, and that file's bytes."""
    size = other_bytes
    while True:  # the count's own digits lengthen the file: grows to a fixed point in a step or two
        document = json.dumps(replace(entry, bytes=size).to_dict(), indent=1, ensure_ascii=False,
                              allow_nan=False).encode("utf-8") + b"\n"
        if other_bytes + len(document) == size:
            return replace(entry, bytes=size), document
        size = other_bytes + len(document)


def _flatten(data: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}, "c": [1]}`` → ``{"a.b": 1, "c": [1]}`` (lists stay whole, an empty dict stays ``{}``)."""
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= _flatten(value, name + ".")
        else:
            out[name] = value
    return out
