"""The user's folder of audio, on a local disk or on object storage (``s3://bucket/sounds``).

Everything that reads the collection (preparation, the evaluation set, the ``auto`` preset's size
check, sweeps) names files by *location*: a local path, or a URI under the folder's URI. Local
folders are walked with :func:`~distill.audio_io.find_audio_files` as before; remote ones are
listed through pyarrow with the same rules (audio extensions, no hidden entries, no caches).
Reading a remote file costs one GET of the whole object into memory (see
:func:`distill.audio_io.readable`); nothing is copied to a local disk.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from distill.audio_io import AUDIO_EXTENSIONS, CACHE_DIR_NAMES, find_audio_files
from distill.storage import Store, is_uri


@dataclass(frozen=True)
class SourceStat:
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class SourceFolder:
    """A folder of audio; ``location`` is its canonical spelling (resolved path, or URI without a trailing ``/``)."""

    location: str
    store: Store | None  # set for a storage URI

    @classmethod
    def open(cls, location: str | os.PathLike) -> SourceFolder:
        """The folder at ``location``; raises ``FileNotFoundError`` / ``NotADirectoryError`` naming it."""
        text = os.fspath(location)
        if not is_uri(text):
            root = Path(text).expanduser().resolve()
            if not root.exists():
                raise FileNotFoundError(f"{location}: folder does not exist")
            if not root.is_dir():
                raise NotADirectoryError(f"{location}: not a folder")
            return cls(str(root), None)
        uri = text.rstrip("/")
        try:
            store = Store.open(uri)
            kind = store.filesystem.get_file_info(store.root).type
        except (ValueError, OSError) as exc:  # a malformed URI, a missing bucket, refused credentials
            raise FileNotFoundError(f"{location}: cannot be read ({exc})") from None
        if kind == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{location}: folder does not exist")
        if kind != pafs.FileType.Directory:
            raise NotADirectoryError(f"{location}: not a folder")
        return cls(uri, store)

    @property
    def is_remote(self) -> bool:
        return self.store is not None

    def locate(self, rel: str) -> str:
        """Location of ``rel`` (``/``-separated, relative to the folder): a file, or a folder such as the cache."""
        return f"{self.location}/{rel}" if self.is_remote else str(Path(self.location) / rel)

    def list_audio(self) -> dict[str, SourceStat]:
        """Every audio file (relative, ``/``-separated, sorted) → size and modification time."""
        if not self.is_remote:
            root = Path(self.location)
            out = {}
            for path in find_audio_files(root):
                st = path.stat()
                out[path.relative_to(root).as_posix()] = SourceStat(st.st_size, st.st_mtime_ns)
            return out
        infos = self.store.filesystem.get_file_info(pafs.FileSelector(self.store.root, recursive=True))
        prefix = self.store.root.rstrip("/") + "/"
        found = {}
        for info in infos:
            rel = info.path[len(prefix):]
            if info.type == pafs.FileType.File and _wanted(rel):
                found[rel] = SourceStat(int(info.size), int(info.mtime_ns or 0))
        return dict(sorted(found.items()))


def _wanted(rel: str) -> bool:
    """The rules of :func:`~distill.audio_io.find_audio_files`, for a listed object's relative path."""
    *folders, name = rel.split("/")
    if any(part.startswith(".") or part in CACHE_DIR_NAMES for part in folders):
        return False
    return not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS)


def stat_file(location: str) -> SourceStat:
    """Size and modification time of one file; raises ``OSError`` when it cannot be read."""
    if not is_uri(location):
        st = os.stat(location)
        return SourceStat(st.st_size, st.st_mtime_ns)
    filesystem, path = pafs.FileSystem.from_uri(location)
    info = filesystem.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"{location}: file does not exist")
    return SourceStat(int(info.size), int(info.mtime_ns or 0))


def file_sha256(location: str) -> str:
    """SHA-256 of a file's bytes, streamed (1 MiB at a time) from a disk or object storage."""
    digest = hashlib.sha256()
    if is_uri(location):
        filesystem, path = pafs.FileSystem.from_uri(location)
        handle = filesystem.open_input_stream(path)
    else:
        handle = open(location, "rb")  # noqa: SIM115 (closed below, either way)
    with handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
