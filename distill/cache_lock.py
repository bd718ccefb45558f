"""One writer at a time: a lock file that a second ``distill prepare`` (or library change) respects.

A file holding ``host pid`` is created exclusively (``O_EXCL``); a lock left by a process that no
longer exists on this host (a killed run) is taken over. pyarrow offers no exclusive create on
object storage, so there the lock is advisory only: one writer per cache prefix is the operator's
job on a cluster (the README says so).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from distill.storage import Store

LOCK_FILE = ".lock"  # present while a build writes the cache


class CacheUnavailable(ValueError):
    """The cache cannot be written now (another writer, or no permission); the message says why."""


@contextmanager
def cache_lock(store: Store) -> Iterator[None]:
    """Hold the cache of ``store`` for writing; raises :class:`CacheUnavailable`."""
    try:
        store.make_dirs()
    except OSError as exc:
        raise CacheUnavailable(f"{store.display()}: cannot create the cache folder ({exc.strerror or exc}); "
                               "choose another place with --cache") from None

    def busy(host: str, pid: str, path: Path) -> Exception:
        return CacheUnavailable(f"{store.display()}: another `distill prepare` ({host} pid {pid}) is writing "
                                f"this cache; wait for it to finish (or delete {path} if that process is gone)")

    def unwritable(exc: OSError) -> Exception:
        return CacheUnavailable(f"{store.display()}: cannot write the cache ({exc.strerror or exc}); "
                                "choose another place with --cache")

    with lock_file(store, LOCK_FILE, wait=0.0, busy=busy, unwritable=unwritable):
        yield


@contextmanager
def lock_file(store: Store, name: str, *, wait: float, busy: Callable[[str, str, Path], Exception],
              unwritable: Callable[[OSError], Exception]) -> Iterator[None]:
    """Hold ``store``/``name`` as an exclusive lock file (``host pid`` inside) while the block runs.

    A lock whose process is gone (same host) is taken over; a live holder is waited for up to
    ``wait`` seconds, then ``busy(host, pid, path)`` is raised; a lock that cannot be created
    raises ``unwritable(error)``. Object storage has no exclusive create, so there nothing is held.
    """
    if not store.is_local:
        yield
        return
    path = Path(store.path(name))
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                host, pid = (path.read_text(errors="replace").split() + ["", ""])[:2]
            except FileNotFoundError:
                continue  # released meanwhile
            if host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
                path.unlink(missing_ok=True)  # left by a killed process
                continue
            if time.monotonic() >= deadline:
                raise busy(host, pid, path) from None
            time.sleep(0.05)
        except OSError as exc:
            raise unwritable(exc) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{socket.gethostname()} {os.getpid()}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Is there a process ``pid`` on this machine (ours or another user's)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
