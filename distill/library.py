"""The model library: a folder (local or a storage URI) of ``.distill`` files and a catalog that indexes them.

Layout::

    models/<id>.distill     one model file per model; ``id`` is 12 random hex characters
    catalog.json            {"version": 1, "models": [entry, ...]}: name, tags, summary, size, checksum …
    .lock                   present while a process changes the library (local folders only)

The model files are the truth and the catalog only an index, so nothing is lost with it: a missing
or unreadable catalog is rebuilt from the files (with a :class:`LibraryWarning`), an entry whose file
is gone is dropped, and a file the catalog does not know (copied in, or left by a crash between the
two writes) is indexed. Names, tags and descriptions live in the model files too, so a rebuild keeps
them. Every write is atomic (:meth:`Store.write_bytes`), and read-modify-write of the catalog happens
under a lock file, so two processes adding models at once both end up in the catalog.

A model is referred to by its id, its name, a unique id prefix (≥ 4 characters), or the path of a
``.distill`` file anywhere (used without importing it).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.fs as pafs

from distill import model_file
from distill.cache_lock import lock_file as shared_lock_file
from distill.model_file import SUFFIX, ModelFile, ModelFileError
from distill.storage import TEMP_PREFIX, Store

CATALOG = "catalog.json"
CATALOG_VERSION = 1
MODELS = "models"
LOCK_FILE = ".lock"
LOCK_WAIT_SECONDS = 10.0  # library writes take a moment; a second writer waits rather than fails
MIN_PREFIX = 4  # shortest id prefix accepted as a reference
_ID = re.compile(r"^[0-9a-f]{12}$")
_BAD_NAME_CHARS = '/\\:*?"<>|'  # not portable in file names (export writes <name>.distill)


class LibraryError(ValueError):
    """A library operation that cannot be done; the message names the model or the library and says why."""


class UnknownModel(LibraryError):
    """No model matches a reference."""


class AmbiguousModel(LibraryError):
    """Several models match a reference; ``candidates`` lists them."""

    def __init__(self, message: str, candidates: list[LibraryEntry]):
        super().__init__(message)
        self.candidates = candidates


class LibraryWarning(UserWarning):
    """Something the library repaired on its own (catalog rebuilt, entries dropped)."""


@dataclass(frozen=True)
class LibraryEntry:
    """One model of the catalog, or (``external``) a model file outside the library."""

    id: str  # 12 hex characters; "" for an external file
    name: str
    file: str  # relative to the library root ("models/<id>.distill"); path or URI when external
    tags: tuple[str, ...]
    description: str
    created: str  # ISO UTC, when the model was made (its meta)
    added: str  # ISO UTC, when it entered the library
    bytes: int
    sha256: str  # of the whole file; "" for an external file (not read for resolving)
    summary: dict  # preset, epochs, val_mrstft, sliders, sample_rate, train_seconds, audio_seconds, lineage
    external: bool = False

    def to_dict(self) -> dict:
        data = {"id": self.id, "name": self.name, "file": self.file, "tags": list(self.tags),
                "description": self.description, "created": self.created, "added": self.added,
                "bytes": self.bytes, "sha256": self.sha256, "summary": self.summary}
        return data | ({"external": True} if self.external else {})

    @classmethod
    def from_dict(cls, data: dict) -> LibraryEntry:
        entry = cls(id=data["id"], name=data["name"], file=data["file"], tags=tuple(data["tags"]),
                    description=data["description"], created=data["created"], added=data["added"],
                    bytes=int(data["bytes"]), sha256=data["sha256"], summary=dict(data["summary"]))
        if not _ID.match(entry.id) or entry.file != _model_path(entry.id):
            raise ValueError(f"bad entry id/file {entry.id!r}/{entry.file!r}")
        if not all(isinstance(v, str) for v in (entry.name, entry.description, entry.created, *entry.tags)):
            raise ValueError(f"bad entry {entry.id}")
        return entry

    def label(self) -> str:
        """``name (id, created)`` — how a candidate is shown in messages."""
        return f"{self.name} ({self.id or self.file}, {_short_time(self.created)})"


def sliders(analysis: dict | None) -> list[dict]:
    """The sliders of a latent analysis (:meth:`distill.latent_space.LatentSpace.to_dict`) for display:
    ``[{"index", "label", "descriptor", "explained_variance", "rho", "rho_with", "rhos"}]``.

    ``index`` is 1-based; ``rhos`` is every descriptor's Spearman ρ against the slider position;
    ``rho`` is the one of the slider's own descriptor, or for an "Axis N" the strongest one, named
    by ``rho_with``. ``[]`` without an analysis. Read as plain dicts, tolerant of missing fields.
    """
    items = analysis.get("sliders") if isinstance(analysis, dict) else None
    out = []
    for position, item in enumerate(items if isinstance(items, list) else []):
        item = item if isinstance(item, dict) else {}
        rhos = item.get("rho") if isinstance(item.get("rho"), dict) else {}
        descriptor = item.get("descriptor")
        rho_with = descriptor if descriptor in rhos else max(rhos, key=lambda k: abs(rhos[k]), default=None)
        out.append({"index": item.get("index", position + 1), "label": str(item.get("label", f"Axis {position + 1}")),
                    "descriptor": descriptor, "explained_variance": item.get("explained_variance"),
                    "rho": rhos.get(rho_with), "rho_with": rho_with, "rhos": rhos})
    return out


def summarize(meta: dict) -> dict:
    """The catalog's short summary of a model's meta (what ``model list`` shows)."""
    config = meta.get("config") or {}
    spectral = (config.get("prepare") or {}).get("spectral") or {}
    training, report = meta.get("training") or {}, meta.get("report") or {}
    return {"preset": config.get("preset"), "epochs": training.get("epochs", report.get("epochs")),
            "val_mrstft": report.get("val_mrstft"), "sliders": [s["label"] for s in sliders(meta.get("analysis"))],
            "sample_rate": spectral.get("sample_rate"),
            "train_seconds": training.get("seconds", report.get("seconds")),
            "audio_seconds": training.get("audio_seconds"), "lineage": meta.get("lineage")}


def check_name(name: str) -> str:
    """A model name, stripped; :class:`LibraryError` if it is empty or could not be a file name."""
    if not isinstance(name, str) or not name.strip():
        raise LibraryError("a model name must not be empty")
    name = name.strip()
    bad = sorted({c for c in name if c in _BAD_NAME_CHARS or ord(c) < 32})
    if bad or name in (".", "..") or name.startswith("."):
        shown = ", ".join(repr(c) for c in bad) if bad else "a leading '.'"
        raise LibraryError(f"model name {name!r} contains {shown}; names may not contain "
                           f"{' '.join(_BAD_NAME_CHARS)}, control characters or start with '.'")
    if _ID.match(name):
        raise LibraryError(f"model name {name!r} looks like a model id; choose another name")
    if len(name) > 200:
        raise LibraryError(f"model name is {len(name)} characters long; at most 200")
    return name


def _check_tags(tags) -> list[str]:
    if isinstance(tags, str):
        tags = [tags]
    out = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise LibraryError(f"a tag must be a non-empty text, got {tag!r}")
        if tag.strip() not in out:
            out.append(tag.strip())
    return out


class Library:
    """A models folder (see the module docstring). Open with :meth:`open`."""

    def __init__(self, store: Store):
        self.store = store

    @classmethod
    def open(cls, location: str | os.PathLike | None = None) -> Library:
        """The library at ``location`` (folder or URI); ``None`` → the settings' library."""
        if location is None:
            from distill.settings import load_settings

            location = load_settings().library
        try:
            store = Store.open(location)
            is_file = store.filesystem.get_file_info(store.root).type == pafs.FileType.File
        except (ValueError, OSError) as exc:
            raise LibraryError(str(exc)) from None
        if is_file:
            raise LibraryError(f"{store.display()}: is a file; the model library is a folder")
        return cls(store)

    @property
    def display(self) -> str:
        return self.store.display()

    def location(self, entry: LibraryEntry) -> str:
        """Where ``entry``'s model file is: an absolute path, or a URI."""
        if entry.external:
            return entry.file
        return self.store.path(entry.file) if self.store.is_local else self.store.display(entry.file)

    # --- reading ---------------------------------------------------------------------------------------------------

    def list(self, query: str | None = None) -> list[LibraryEntry]:
        """Every model, newest first; with ``query``, those whose name, tags or description contain it
        (case-insensitive)."""
        entries = self._entries()
        if query:
            needle = query.casefold()
            entries = [e for e in entries if needle in e.name.casefold() or needle in e.description.casefold()
                       or any(needle in t.casefold() for t in e.tags)]
        return sorted(entries, key=lambda e: (e.created, e.added), reverse=True)

    def resolve(self, ref: str, entries: list[LibraryEntry] | None = None) -> LibraryEntry:
        """The model ``ref`` names: an exact id, else an exact name (case-insensitive if no exact match),
        else a unique id prefix (≥ 4 characters), else the path of a model file outside the library.
        ``entries`` (from :meth:`entries`) saves reading the catalog again.

        Raises :class:`AmbiguousModel` listing every candidate, or :class:`UnknownModel` with close names.
        """
        return self._resolve(self._entries() if entries is None else entries, ref)

    def entries(self) -> list[LibraryEntry]:
        """Every model in the library (catalog order)."""
        return self._entries()

    def load(self, ref: str) -> ModelFile:
        """The verified model file ``ref`` names (see :func:`distill.model_file.from_bytes`)."""
        return self.read_model(self.resolve(ref))

    def read_model(self, entry: LibraryEntry) -> ModelFile:
        """The verified model file of an entry :meth:`resolve` gave (no second catalog read)."""
        return model_file.from_bytes(self._read(entry), self.location(entry))

    def info(self, ref: str) -> dict:
        """The entry of ``ref`` plus its full meta (config, report, training, analysis), its ``location``
        and its ``sliders`` (:func:`sliders`)."""
        entry = self.resolve(ref)
        meta = model_file.read_meta(self.location(entry))
        return entry.to_dict() | {"location": self.location(entry), "meta": meta,
                                  "sliders": sliders(meta.get("analysis"))}

    # --- changing --------------------------------------------------------------------------------------------------

    def add(self, mf: ModelFile, *, name: str | None = None, tags=(), description: str | None = None
            ) -> LibraryEntry:
        """Store ``mf`` under a new id. ``name`` defaults to the model's own; ``tags`` are added to its
        tags; ``description`` replaces its description when given. The file's meta is updated to match."""
        # A model's own name (e.g. a training run's) is made valid rather than refused: training that
        # took an hour must not fail to be kept over a ':' in a folder name.
        chosen = check_name(_file_name(mf.name)[:-len(SUFFIX)][:200] if name is None else name)
        tags = _check_tags([*mf.meta.get("tags", []), *_check_tags(tags)])
        description = mf.meta.get("description", "") if description is None else str(description)
        mf = model_file.with_meta(mf, name=chosen, tags=tags, description=description)
        model_file.verify(mf, f"model {chosen!r}")
        data = model_file.to_bytes(mf)
        with self._locked():
            entries = self._entries(persist=False)
            taken = {e.id for e in entries} | {Path(p).stem for p in self.store.list_files(MODELS)}
            model_id = next(i for i in iter(lambda: secrets.token_hex(6), None) if i not in taken)
            self.store.write_bytes(_model_path(model_id), data)
            entry = _entry(model_id, data, mf.meta)
            self._write_catalog([*entries, entry])
        return entry

    def import_file(self, path: str | os.PathLike, *, name: str | None = None, tags=(),
                    description: str | None = None) -> LibraryEntry:
        """Verify the model file at ``path`` fully, then :meth:`add` it; a bad file adds nothing."""
        data = model_file.read_location(path)
        mf = model_file.from_bytes(data, os.fspath(path))
        return self.add(mf, name=name, tags=tags, description=description)

    def delete(self, ref: str) -> LibraryEntry:
        """Remove a model (file and entry); returns its entry."""
        with self._locked():
            entries = self._entries(persist=False)
            entry = self._own(self._resolve(entries, ref), "delete")
            # File first: a crash in between leaves an entry without a file, which the next read drops.
            self.store.delete_file(entry.file)
            self._write_catalog([e for e in entries if e.id != entry.id])
        return entry

    def rename(self, ref: str, new_name: str) -> LibraryEntry:
        """Give a model a new name (in the catalog and in its file's meta, rewritten atomically)."""
        new_name = check_name(new_name)
        return self._rewrite(ref, "rename", lambda entry, mf: model_file.with_meta(mf, name=new_name))

    def replace_model(self, ref: str, mf: ModelFile) -> LibraryEntry:
        """Replace the model file of ``ref`` by ``mf`` (e.g. with a new latent analysis), atomically,
        keeping the entry's id, name, tags and description."""
        model_file.verify(mf, f"replacement for {ref!r}")
        return self._rewrite(ref, "replace", lambda entry, _: model_file.with_meta(
            mf, name=entry.name, tags=list(entry.tags), description=entry.description))

    def export(self, ref: str, dest: str | os.PathLike, *, overwrite: bool = False) -> str:
        """Copy the model file of ``ref`` to ``dest`` (a file, or an existing folder → ``<name>.distill``)
        after verifying it; refuses to replace an existing file unless ``overwrite``. Returns the path."""
        entry = self.resolve(ref)
        data = self._read(entry)
        model_file.from_bytes(data, self.location(entry))  # never hand out a damaged copy
        target = os.fspath(dest)
        try:
            store, name = _destination(target, _file_name(entry.name))
            if store.exists(name) and not overwrite:
                raise LibraryError(f"{store.display(name)} already exists; pass --overwrite to replace it")
            store.write_bytes(name, data)
        except OSError as exc:
            raise LibraryError(f"{target}: cannot write ({exc.strerror or exc})") from None
        return store.display(name)

    # --- internals -------------------------------------------------------------------------------------------------

    def _read(self, entry: LibraryEntry) -> bytes:
        if entry.external:
            return model_file.read_location(entry.file)
        try:
            return self.store.read_bytes(entry.file)
        except FileNotFoundError:
            raise LibraryError(f"{self.store.display(entry.file)}: model file of {entry.label()} is gone") from None

    def _own(self, entry: LibraryEntry, action: str) -> LibraryEntry:
        if entry.external:
            raise LibraryError(f"{entry.file} is a file outside the library {self.display}; cannot {action} it "
                               "(import it first with `distill model import`)")
        return entry

    def _rewrite(self, ref: str, action: str, change) -> LibraryEntry:
        with self._locked():
            entries = self._entries(persist=False)
            entry = self._own(self._resolve(entries, ref), action)
            mf = change(entry, model_file.from_bytes(self._read(entry), self.location(entry)))
            data = model_file.to_bytes(mf)
            self.store.write_bytes(entry.file, data)
            updated = replace(_entry(entry.id, data, mf.meta), added=entry.added)
            self._write_catalog([updated if e.id == entry.id else e for e in entries])
        return updated

    def _resolve(self, entries: list[LibraryEntry], ref: str) -> LibraryEntry:
        ref = ref.strip() if isinstance(ref, str) else ""
        if not ref:
            raise UnknownModel("no model given (an id, a name or the path of a .distill file)")
        lowered = ref.lower()
        for entry in entries:
            if entry.id == lowered:
                return entry
        for matches in ([e for e in entries if e.name == ref],
                        [e for e in entries if e.name.casefold() == ref.casefold()],
                        [e for e in entries if len(ref) >= MIN_PREFIX and e.id.startswith(lowered)]):
            if len(matches) == 1:
                return matches[0]
            if matches:
                newest = sorted(matches, key=lambda e: (e.created, e.added), reverse=True)
                raise AmbiguousModel(f"{ref!r} matches {len(matches)} models: "
                                     f"{'; '.join(e.label() for e in newest)} — use the id", newest)
        external = self._external(ref, entries)
        if external is not None:
            return external
        if "/" in ref or os.sep in ref or ref.endswith(SUFFIX):
            raise UnknownModel(f"{ref}: no such model file (and no model of that name in the library {self.display})")
        names = sorted({e.name for e in entries})
        close = difflib.get_close_matches(ref, names, n=3, cutoff=0.5)
        close += [n for n in names if ref.casefold() in n.casefold() and n not in close][:3 - len(close)]
        hint = f"; did you mean {', '.join(repr(n) for n in close)}?" if close else \
            ("; `distill model list` shows them" if entries else " (it is empty)")
        raise UnknownModel(f"no model {ref!r} in the library {self.display}: not an id, name or model file path{hint}")

    def _external(self, ref: str, entries: list[LibraryEntry]) -> LibraryEntry | None:
        """An entry for a model file path outside (or inside) the library, or ``None`` when no such file exists."""
        is_uri = "://" in ref
        if not (ref.endswith(SUFFIX) or "/" in ref or os.sep in ref):
            return None  # a bare word is a name, even if a file of that name happens to be here
        if not is_uri:
            path = os.path.abspath(os.path.expanduser(ref))
            if not os.path.isfile(path):
                return None
            if self.store.is_local and os.path.dirname(path) == os.path.abspath(self.store.path(MODELS)):
                own = [e for e in entries if e.file == _model_path(Path(path).stem)]
                if own:
                    return own[0]
        elif not ref.endswith(SUFFIX):
            return None
        try:
            meta = model_file.read_meta(ref)
            store, name = _destination(ref, "")
            size = store.filesystem.get_file_info(store.path(name)).size or 0
        except ModelFileError as exc:
            if is_uri and "no such file" in str(exc):
                return None
            raise
        return LibraryEntry(id="", name=meta["name"], file=ref, tags=tuple(meta["tags"]),
                            description=meta["description"], created=meta["created"], added="", bytes=int(size),
                            sha256="", summary=summarize(meta), external=True)

    def _entries(self, persist: bool = True) -> list[LibraryEntry]:
        """The catalog reconciled with the model files (see the module docstring); written back when it
        changed and ``persist`` (best effort: a read-only library is still readable)."""
        files = {}
        for path, size in self.store.list_files(MODELS).items():
            base = path.rsplit("/", 1)[-1]
            if base.startswith(TEMP_PREFIX) or not base.endswith(SUFFIX):
                continue
            if path != _model_path(Path(base).stem) or not _ID.match(Path(base).stem):
                _warn(f"{self.store.display(path)}: ignored (model files in the library are named <id>{SUFFIX}; "
                      "add others with `distill model import`)")
                continue
            files[path] = size
        catalog, problem = self._read_catalog()
        changed = catalog is None and (bool(files) or problem != "is missing")  # an empty library stays unwritten
        if catalog is None:
            catalog = []
            if files:
                _warn(f"{self.store.display(CATALOG)} {problem}: rebuilt from the {len(files)} model files")
        entries = []
        for entry in catalog:
            if entry.file not in files:
                _warn(f"{self.store.display(CATALOG)}: dropped {entry.label()}, its model file is gone")
                changed = True
            elif files[entry.file] != entry.bytes:  # rewritten outside a catalog update: index it anew
                changed = True
            else:
                entries.append(entry)
        known = {e.file for e in entries}
        for path in sorted(set(files) - known):
            entry = self._index(path, next((e.added for e in catalog if e.file == path), None))
            if entry is not None:
                entries.append(entry)
                changed = True
        if changed and persist:
            try:
                with self._locked(wait=0.0):
                    self._write_catalog(entries)
            except (LibraryError, OSError):
                pass  # someone else is writing it, or we may not: the next write repairs it
        return entries

    def _index(self, path: str, added: str | None) -> LibraryEntry | None:
        try:
            data = self.store.read_bytes(path)
            return _entry(Path(path).stem, data, model_file.read_meta(data), added)
        except (ModelFileError, OSError) as exc:
            _warn(f"{self.store.display(path)}: skipped, not a usable model file ({exc})")
            return None

    def _read_catalog(self) -> tuple[list[LibraryEntry] | None, str]:
        try:
            data = json.loads(self.store.read_bytes(CATALOG))
        except FileNotFoundError:
            return None, "is missing"
        except (OSError, ValueError) as exc:
            return None, f"is unreadable ({exc})"
        try:
            if data["version"] != CATALOG_VERSION:
                return None, f"has version {data['version']!r} (this distill writes {CATALOG_VERSION})"
            return [LibraryEntry.from_dict(e) for e in data["models"]], ""
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return None, f"is damaged ({type(exc).__name__}: {exc})"

    def _write_catalog(self, entries: list[LibraryEntry]) -> None:
        ordered = sorted(entries, key=lambda e: (e.added, e.id))
        text = json.dumps({"version": CATALOG_VERSION, "models": [e.to_dict() for e in ordered]}, indent=1,
                          ensure_ascii=False)
        self.store.write_bytes(CATALOG, text.encode("utf-8") + b"\n")

    @contextmanager
    def _locked(self, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
        try:
            self.store.make_dirs()
        except OSError as exc:
            raise LibraryError(f"{self.display}: cannot create the library folder ({exc.strerror or exc})") from None
        with lock_file(self.store, LOCK_FILE, wait=wait, what="model library"):
            yield


@contextmanager
def lock_file(store: Store, name: str, *, wait: float, what: str) -> Iterator[None]:
    """Hold ``store``/``name`` exclusively (:func:`distill.cache_lock.lock_file`), waiting up to ``wait``
    seconds for another holder; :class:`LibraryError` names the holder or the reason."""

    def busy(host: str, pid: str, path: Path) -> Exception:
        return LibraryError(f"{store.display()}: another distill ({host} pid {pid}) is changing this "
                            f"{what}; try again (or delete {path} if that process is gone)")

    def unwritable(exc: OSError) -> Exception:
        return LibraryError(f"{store.display()}: cannot write the {what} ({exc.strerror or exc})")

    with shared_lock_file(store, name, wait=wait, busy=busy, unwritable=unwritable):
        yield


def _model_path(model_id: str) -> str:
    return f"{MODELS}/{model_id}{SUFFIX}"


def _entry(model_id: str, data: bytes, meta: dict, added: str | None = None) -> LibraryEntry:
    return LibraryEntry(id=model_id, name=meta["name"], file=_model_path(model_id), tags=tuple(meta["tags"]),
                        description=meta["description"], created=meta["created"], added=added or _now(),
                        bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), summary=summarize(meta))


def _destination(target: str, default_name: str) -> tuple[Store, str]:
    """(store of the folder, file name) for a destination path/URI; an existing folder (or a name ending
    in ``/``) gets ``default_name`` when one is given."""
    if "://" in target:
        stripped = target.rstrip("/")
        if default_name:
            store = Store.open(stripped)
            if target.endswith("/") or store.filesystem.get_file_info(store.root).type == pafs.FileType.Directory:
                return store, default_name
        folder, _, name = stripped.rpartition("/")
        return Store.open(folder), name
    path = os.path.abspath(os.path.expanduser(target))
    if default_name and (os.path.isdir(path) or target.endswith(("/", os.sep))):
        return Store.open(path), default_name
    return Store.open(os.path.dirname(path)), os.path.basename(path)


def _file_name(name: str) -> str:
    """A portable file name for a model called ``name`` (also a valid model name, before the suffix)."""
    safe = "".join("_" if c in _BAD_NAME_CHARS or ord(c) < 32 else c for c in name).strip(". ") or "model"
    return (f"{safe}-model" if _ID.match(safe) else safe) + SUFFIX


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _short_time(stamp: str) -> str:
    """``2026-11-21T10:03:12+00:00`` → ``2026-11-21 10:03`` (UTC)."""
    return stamp[:16].replace("T", " ") if stamp else "?"


def _warn(message: str) -> None:
    warnings.warn(LibraryWarning(message), stacklevel=3)
