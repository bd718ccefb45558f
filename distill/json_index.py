"""A small JSON document that must survive crashes: written atomically, with the previous version kept as a backup.

Used by the sound presets (``presets.json`` next to the model library) and the generation
history (``index.json``). Each write first copies the current good document to ``<name>.bak``,
then replaces ``<name>`` atomically (:meth:`distill.storage.Store.write_bytes`): a reader never
sees half a file, and if the main document is ever damaged anyway (a disk error, a hand edit, a
tool that wrote it without our care) :meth:`JsonIndex.read` falls back to the backup and says so.
Read-modify-write happens under a lock file (:meth:`JsonIndex.locked`) so two processes (the UI and
the CLI, or two Serve replicas) cannot lose each other's changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from distill.cache_lock import lock_file
from distill.storage import Store

BACKUP_SUFFIX = ".bak"
LOCK_WAIT_SECONDS = 10.0


class IndexWriteError(ValueError):
    """An index that cannot be written or locked; the message names the file and the reason."""


@dataclass(frozen=True)
class IndexRead:
    """What :meth:`JsonIndex.read` found: the document, and a note when it was not the main file's."""

    data: dict | None  # None: neither the file nor its backup exists (or both are unusable)
    note: str = ""  # "" when the main file was read as is; else what happened (for a warning)

    @property
    def recovered(self) -> bool:
        return bool(self.note) and self.data is not None


class JsonIndex:
    """``store``/``name``: one JSON object, checked by ``validate`` (which raises ``ValueError`` when damaged)."""

    def __init__(self, store: Store, name: str, what: str, validate: Callable[[dict], None] | None = None):
        self.store = store
        self.name = name
        self.what = what  # "history index", "presets": for messages
        self.validate = validate or (lambda data: None)

    @property
    def backup(self) -> str:
        return self.name + BACKUP_SUFFIX

    def display(self) -> str:
        return self.store.display(self.name)

    def _load(self, name: str) -> tuple[dict | None, str]:
        try:
            data = json.loads(self.store.read_bytes(name).decode("utf-8"))
        except FileNotFoundError:
            return None, "is missing"
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return None, f"is unreadable ({exc})"
        try:
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, found {type(data).__name__}")
            self.validate(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return None, f"is damaged ({type(exc).__name__}: {exc})"
        return data, ""

    def read(self) -> IndexRead:
        """The document, or its backup when the document is missing or damaged (with a note saying so)."""
        data, problem = self._load(self.name)
        if data is not None:
            return IndexRead(data)
        backup, backup_problem = self._load(self.backup)
        if problem == "is missing" and backup is None:
            return IndexRead(None)  # never written (or both gone): a fresh start, nothing to report
        if backup is not None:
            return IndexRead(backup, f"{self.display()} {problem}; recovered the previous version from "
                                     f"{self.store.display(self.backup)}")
        return IndexRead(None, f"{self.display()} {problem}, and its backup {backup_problem}")

    def write(self, data: dict) -> None:
        """Replace the document atomically, keeping the current good one as the backup."""
        self.validate(data)
        current, _ = self._load(self.name)
        if current is not None:
            self.store.write_bytes(self.backup, _encode(current))
        self.store.write_bytes(self.name, _encode(data))

    @contextmanager
    def locked(self, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
        """Hold this index's lock file while a read-modify-write runs (local folders; see cache_lock)."""

        def busy(host: str, pid: str, path: Path) -> Exception:
            return IndexWriteError(f"{self.display()}: another distill ({host} pid {pid}) is changing the {self.what}; "
                               f"try again (or delete {path} if that process is gone)")

        def unwritable(exc: OSError) -> Exception:
            return IndexWriteError(f"{self.display()}: cannot write the {self.what} ({exc.strerror or exc})")

        try:
            self.store.make_dirs()
        except OSError as exc:
            raise unwritable(exc) from None
        with lock_file(self.store, f".{self.name}.lock", wait=wait, busy=busy, unwritable=unwritable):
            yield


def _encode(data: dict) -> bytes:
    return json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"
