"""A folder on any pyarrow filesystem: a local path, ``file://…``, ``s3://bucket/prefix``, ``gs://…``.

The cache (and later run storage and the model library) goes through this one small class, so
that every path that can be remote is handled the same way. Credentials and endpoints come from
the usual environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, …), read by pyarrow.

Atomic writes: data goes to a temporary name in the same folder and is then moved over the real
name. On a local disk that is ``rename(2)``, atomic; on object storage an object only becomes
visible once its upload completes, so readers never see half a file either way.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

TEMP_PREFIX = ".tmp-"  # files being written; never referenced by a manifest


def is_uri(location: str | os.PathLike) -> bool:
    """Whether ``location`` names a file or folder on a pyarrow filesystem (``s3://…``), not a local path."""
    return "://" in os.fspath(location)


@dataclass(frozen=True)
class Store:
    """A root folder on a filesystem; all paths are relative, ``/``-separated. Picklable."""

    filesystem: pafs.FileSystem
    root: str  # path inside ``filesystem`` (no scheme)
    uri: str  # what the user gave, for messages

    @classmethod
    def open(cls, location: str | os.PathLike) -> Store:
        """A store at a local path or a filesystem URI; raises ``ValueError`` naming the location."""
        text = os.fspath(location)
        if not is_uri(text):
            text = os.path.abspath(os.path.expanduser(text))
        try:
            filesystem, root = pafs.FileSystem.from_uri(text)
        except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ValueError(f"{location}: not a usable folder or storage URI ({exc})") from None
        return cls(filesystem, root.rstrip("/") or "/", os.fspath(location))

    @property
    def is_local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def path(self, relative: str = "") -> str:
        """Full path inside the filesystem of ``relative``."""
        return f"{self.root}/{relative}" if relative else self.root

    def locate(self, relative: str = "") -> str:
        """A location of ``relative`` that :meth:`open` (here or in another process) opens again: an
        absolute path on a local disk, else the URI with ``relative`` appended to its path (query
        options such as ``?region=`` kept). :meth:`path` drops the scheme: ``s3://b/x`` → ``b/x``,
        which another process would take for a local folder."""
        if self.is_local:
            return self.path(relative)
        parts = urlsplit(self.uri)
        path = f"{parts.path.rstrip('/')}/{relative}" if relative else parts.path.rstrip("/")
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))

    def display(self, relative: str = "") -> str:
        """Human-readable location of ``relative`` (the user's own spelling of the root)."""
        return f"{self.uri.rstrip('/')}/{relative}" if relative else self.uri

    def exists(self, relative: str) -> bool:
        return self.filesystem.get_file_info(self.path(relative)).type != pafs.FileType.NotFound

    def read_bytes(self, relative: str) -> bytes:
        with self.filesystem.open_input_stream(self.path(relative)) as stream:
            return stream.read()

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write ``relative`` atomically (see the module docstring)."""
        folder, _, name = relative.rpartition("/")
        self.make_dirs(folder)
        temporary = f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"
        temporary = f"{folder}/{temporary}" if folder else temporary
        with self.filesystem.open_output_stream(self.path(temporary)) as stream:
            stream.write(data)
        if self.is_local:
            # pyarrow's local write does not fsync; without it a power cut after the rename can
            # leave an empty file under the final name.
            with open(self.path(temporary), "rb+") as handle:
                os.fsync(handle.fileno())
        self.filesystem.move(self.path(temporary), self.path(relative))

    def make_dirs(self, relative: str = "") -> None:
        """Create ``relative`` (the root itself when empty) and its parents."""
        self.filesystem.create_dir(self.path(relative), recursive=True)

    def list_files(self, relative: str = "") -> dict[str, int]:
        """Every file under ``relative`` (recursive), as a path relative to the *root* → size in bytes.

        ``{}`` when the folder does not exist.
        """
        selector = pafs.FileSelector(self.path(relative), recursive=True, allow_not_found=True)
        prefix = len(self.root) + 1
        return {info.path[prefix:]: info.size for info in self.filesystem.get_file_info(selector)
                if info.type == pafs.FileType.File}

    def list_dirs(self, relative: str = "") -> list[str]:
        """Names of the folders directly inside ``relative``."""
        selector = pafs.FileSelector(self.path(relative), recursive=False, allow_not_found=True)
        return [info.base_name for info in self.filesystem.get_file_info(selector)
                if info.type == pafs.FileType.Directory]

    def delete_file(self, relative: str) -> None:
        try:
            self.filesystem.delete_file(self.path(relative))
        except FileNotFoundError:
            pass

    def delete_dir(self, relative: str) -> None:
        """Delete ``relative`` and everything in it; nothing to do when no such folder exists."""
        try:
            self.filesystem.delete_dir(self.path(relative))
        except (FileNotFoundError, NotADirectoryError):
            pass


def read_location(location: str | os.PathLike) -> bytes:
    """The bytes of one file named by a local path or a filesystem URI (``s3://bucket/x.toml``).

    Raises ``OSError`` (``FileNotFoundError`` when there is no such file) naming it.
    """
    text = os.fspath(location)
    if not is_uri(text):
        with open(os.path.expanduser(text), "rb") as handle:
            return handle.read()
    try:
        filesystem, path = pafs.FileSystem.from_uri(text)
    except ValueError as exc:  # pyarrow's ArrowInvalid: not a URI it knows
        raise OSError(f"not a usable storage URI ({exc})") from None
    if filesystem.get_file_info(path).type != pafs.FileType.File:
        raise FileNotFoundError(f"no such file: {text}")
    with filesystem.open_input_stream(path) as stream:
        return stream.read()
