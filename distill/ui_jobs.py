"""The UI's long actions (preparing a cache, training) as ``distill`` commands in the background.

A job is the same command a user would type (``distill prepare DIR --json …``, ``distill train DIR
--json …``), started as a child process in its own session. So training runs on Ray exactly as the
CLI runs it (an embedded local Ray, or the cluster ``RAY_ADDRESS`` names), a page reload or a
second browser tab shows the job that is running rather than starting another, and a UI restart
finds it again: the job's record (``jobs/current.json`` in the UI's workspace) holds its command,
its process id and where its output goes. No web framework and no Ray here.

Cancel sends SIGINT to the job's process group, the same as Ctrl-C in a terminal: ``distill train``
stops after the batch in progress, keeps its checkpoint and can be resumed (``--resume NAME``);
``distill prepare`` keeps the files it finished. One job runs at a time, because a laptop has the
CPUs for one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from distill.cache_lock import pid_alive
from distill.storage import Store

CURRENT = "current.json"
KEEP_LOG_LINES = 200
_PREPARED = re.compile(r"prepared (\d+)/(\d+) files")
_CHECKED = re.compile(r"checked (\d+)/(\d+) new or changed files")


class JobError(ValueError):
    """A job that cannot be started, cancelled or resumed; the message says why."""


@dataclass
class JobRecord:
    """What is known of a job without asking its process: enough to find it again after a restart."""

    id: str  # "<kind>-YYYYmmdd-HHMMSS"
    kind: str  # "prepare" | "train"
    argv: list[str]  # the distill arguments (without the program)
    pid: int
    started: str  # ISO 8601 UTC
    data_dir: str
    run: str | None = None  # a training run's folder (or URI)
    run_name: str | None = None
    library: str | None = None
    ended: str | None = None
    exit_code: int | None = None
    cancelled: bool = False
    options: dict = field(default_factory=dict)  # what the form asked for (shown again after a reload)


class JobRunner:
    """The UI's background job: at most one running, its record kept in ``folder``."""

    def __init__(self, folder: str | Path, python: str = sys.executable):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.python = python
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None  # only for a job this process started

    # ---- reading -------------------------------------------------------------------------------

    def current(self) -> JobRecord | None:
        """The latest job (running or not), or ``None`` if there never was one."""
        path = self.folder / CURRENT
        try:
            data = json.loads(path.read_text())
            return JobRecord(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):  # damaged record: forget it rather than fail every page load
            return None

    def running(self, record: JobRecord | None = None) -> bool:
        """Whether the job still runs; when it has ended, ``record`` (and the saved record) say how."""
        record = record or self.current()
        if record is None:
            return False
        self._reap(record)
        return record.ended is None

    def ensure_idle(self) -> None:
        """:class:`JobError` while a job runs (starting a second one is refused)."""
        current = self.current()
        if current is not None and self.running(current):
            run = f" (run {current.run_name})" if current.run_name else ""
            raise JobError(f"a {current.kind} job is running{run}, started {current.started[11:19]} UTC; "
                           "wait for it or cancel it first")

    def log_lines(self, record: JobRecord, limit: int = KEEP_LOG_LINES) -> list[str]:
        """The last ``limit`` lines the job printed on stderr (its progress and messages)."""
        try:
            text = (self.folder / f"{record.id}.log").read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.replace("\r", "\n").splitlines() if line.strip()][-limit:]

    def answer(self, record: JobRecord) -> dict | list | None:
        """The job's JSON answer (its stdout), once it has ended; ``None`` before or when it printed none."""
        try:
            text = (self.folder / f"{record.id}.json").read_text()
        except FileNotFoundError:
            return None
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            return None

    def error(self, record: JobRecord) -> str | None:
        """The job's error message (``distill: error: …``), if it failed with one."""
        if record.exit_code in (None, 0):
            return None
        answer = self.answer(record)
        if isinstance(answer, dict) and answer.get("error"):
            return str(answer["error"])
        lines = [line for line in self.log_lines(record) if line.startswith("distill:")]
        if lines:
            return lines[-1].removeprefix("distill: error: ").removeprefix("distill: ")
        if record.cancelled:
            return None
        return f"the {record.kind} job ended with exit code {record.exit_code}"

    @staticmethod
    def fraction(lines: list[str]) -> float | None:
        """How far a prepare job is (0…1), read from its last progress line; ``None`` when unknown."""
        for line in reversed(lines):
            found = _PREPARED.search(line) or _CHECKED.search(line)
            if found:
                done, total = int(found.group(1)), int(found.group(2))
                return done / total if total else None
        return None

    # ---- acting --------------------------------------------------------------------------------

    def start(self, kind: str, argv: list[str], data_dir: str, *, run: str | None = None,
              run_name: str | None = None, library: str | None = None, options: dict | None = None) -> JobRecord:
        """Start ``distill <argv>`` in the background; :class:`JobError` while another job runs."""
        with self._lock:
            self.ensure_idle()
            stamp = datetime.now(timezone.utc)
            job_id = f"{kind}-{stamp.strftime('%Y%m%d-%H%M%S')}"
            log = open(self.folder / f"{job_id}.log", "wb")  # noqa: SIM115 - handed to the child
            out = open(self.folder / f"{job_id}.json", "wb")  # noqa: SIM115
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            try:
                # Its own session: Ctrl-C in the UI's terminal does not reach it, a UI restart does not
                # end it, and Cancel can signal its whole group (the CLI and the Ray it started).
                process = subprocess.Popen([self.python, "-m", "distill.cli", *argv], stdin=subprocess.DEVNULL,
                                           stdout=out, stderr=log, env=env, start_new_session=True,
                                           preexec_fn=_default_sigint)
            finally:
                log.close()
                out.close()
            record = JobRecord(job_id, kind, list(argv), process.pid, stamp.isoformat(timespec="seconds"),
                               data_dir, run=run, run_name=run_name, library=library, options=dict(options or {}))
            self._process = process
            self._write(record)
            return record

    def cancel(self) -> JobRecord:
        """Ask the running job to stop (SIGINT, as Ctrl-C would); :class:`JobError` when none runs."""
        with self._lock:
            record = self.current()
            if record is None or not self.running(record):
                raise JobError("no job is running")
            record.cancelled = True
            self._write(record)
            try:
                os.killpg(record.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            return record

    def wait(self, timeout: float) -> JobRecord | None:
        """Wait up to ``timeout`` seconds for the current job to end; returns its record."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.current()
            if record is None or not self.running(record):
                return self.current()
            time.sleep(0.2)
        return self.current()

    # ---- housekeeping --------------------------------------------------------------------------

    def _reap(self, record: JobRecord) -> None:
        """Record the end of ``record``'s process (its exit code when this process started it)."""
        if record.ended:
            return
        code = None
        if self._process is not None and self._process.pid == record.pid:
            code = self._process.poll()
            if code is None:
                return
        elif self._alive(record.pid):
            return
        record.ended = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record.exit_code = code if code is not None else self._exit_code_unknown(record)
        self._write(record)

    def _exit_code_unknown(self, record: JobRecord) -> int:
        """A job started by an earlier UI process: its exit code is lost; its answer tells how it ended."""
        answer = self.answer(record)
        if not isinstance(answer, dict) or "error" in answer:
            return 1
        return 130 if answer.get("stopped") == "interrupted" else 0

    @staticmethod
    def _alive(pid: int) -> bool:
        if not pid_alive(pid):
            return False
        try:  # a zombie child of ours (ended, not yet waited for) is not running
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
        except OSError:
            return True

    def _write(self, record: JobRecord) -> None:
        Store.open(self.folder).write_bytes(CURRENT, (json.dumps(asdict(record), indent=2) + "\n").encode())


def _default_sigint() -> None:
    """In the child: SIGINT back at its default, so that Cancel stops it even when the UI was started
    from a background shell (which ignores SIGINT, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
