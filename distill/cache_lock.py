"""One writer per cache: a lock file that a second ``distill prepare`` respects.

A file holding ``host pid`` is created exclusively (``O_EXCL``); a lock left by a process that no
longer exists on this host (a killed run) is taken over. pyarrow offers no exclusive create on
object storage, so there the lock is advisory only: one writer per cache prefix is the operator's
job on a cluster (the README says so).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
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
    if not store.is_local:
        yield
        return
    path = Path(store.path(LOCK_FILE))
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            host, pid = (path.read_text(errors="replace").split() + ["", ""])[:2]
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                path.unlink(missing_ok=True)  # left by a killed run
                continue
            raise CacheUnavailable(f"{store.display()}: another `distill prepare` ({host} pid {pid}) is writing "
                                   f"this cache; wait for it to finish (or delete {path} if that process is gone)"
                                   ) from None
        except OSError as exc:
            raise CacheUnavailable(f"{store.display()}: cannot write the cache ({exc.strerror or exc}); "
                                   "choose another place with --cache") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{socket.gethostname()} {os.getpid()}")
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
