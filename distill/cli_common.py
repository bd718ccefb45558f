"""What every ``distill`` subcommand module shares: exit codes, the error type ``main`` reports, JSON errors.

A module of its own so that :mod:`distill.cli` and the command modules it registers
(:mod:`distill.cli_models`, :mod:`distill.cli_generate`) all raise the *same* ``CommandError``:
under ``python -m distill.cli`` the CLI module runs as ``__main__``, and a class defined there
would be a different class from the one ``import distill.cli`` gives.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

EXIT_OK = 0
EXIT_ERROR = 1  # bad input or nothing usable
EXIT_USAGE = 2  # argparse's own code for malformed command lines


class CommandError(Exception):
    """A failure to report as ``distill: error: <message>`` with exit code 1.

    ``skipped`` lists unusable files (``[{"path", "reason"}]``) when those are the cause.
    """

    def __init__(self, message: str, skipped: list[dict] | None = None):
        super().__init__(message)
        self.skipped = skipped or []


_answers: TextIO | None = None  # the real stdout while answers_only_on_stdout is active


@contextmanager
def answers_only_on_stdout(enabled: bool = True) -> Iterator[None]:
    """With ``enabled``, stdout carries only what :func:`print_answer` writes; anything else printed
    meanwhile goes to stderr.

    Why: Ray's driver prints raylet warnings with ``print`` to ``sys.stdout`` (for instance "8 PYTHON
    worker processes have been started …"), even with ``log_to_driver=False``. One of them landed
    before a benchmark's JSON in CI and the reader failed on it. ``main`` wraps every ``--json``
    command in this, and the benchmarks do the same.
    """
    global _answers
    if not enabled:
        yield
        return
    saved = sys.stdout
    _answers, sys.stdout = saved, sys.stderr
    try:
        yield
    finally:
        sys.stdout, _answers = saved, None


def print_answer(value: Any, **dumps_options: Any) -> None:
    """``value`` as one JSON document on stdout (the real one under :func:`answers_only_on_stdout`)."""
    stream = _answers or sys.stdout
    print(json.dumps(value, ensure_ascii=False, **dumps_options), file=stream, flush=True)


def answer(json_mode: bool, value: Any, text: str) -> None:
    """``value`` as the JSON answer in ``--json`` mode, else ``text`` for people."""
    if json_mode:
        print_answer(value)
    else:
        print(text)


def json_errors(command):
    """``command(args)``, whose failure with ``--json`` also prints ``{"error", "files_skipped"}`` on stdout:
    a script reading stdout still gets one JSON object, last."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except CommandError as exc:
            if args.json:
                print_answer({"error": str(exc), "files_skipped": exc.skipped})
            raise

    return run


def ask(question: str) -> bool:
    """A yes/no question on the terminal; anything but y/yes (or end of input) is no."""
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


@contextmanager
def notes(*categories: type[Warning]) -> Iterator[None]:
    """Print warnings of ``categories`` raised in the block as ``distill: note: …`` lines on stderr (every
    time, not once per place); other warnings go through Python's usual display."""
    with warnings.catch_warnings(record=True) as caught:
        for category in categories:
            warnings.simplefilter("always", category)
        try:
            yield
        finally:
            for item in caught:
                if issubclass(item.category, categories):
                    print(f"distill: note: {item.message}", file=sys.stderr)
                else:
                    warnings.showwarning(item.message, item.category, item.filename, item.lineno)


def reporting(action, categories, subject: str):
    """``action(args)`` as a subcommand: the warnings of the classes ``categories()`` returns (imported only
    when the command runs, so ``--help`` stays instant) printed as notes, every ``ValueError``
    (unknown reference, bad setting, an index that cannot be written) and ``OSError`` turned into one
    :class:`CommandError` line (naming the file, else ``subject``), ``--json`` errors as JSON."""

    def run(args: argparse.Namespace) -> int:
        with notes(*categories()):
            try:
                return action(args)
            except CommandError:
                raise
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            except OSError as exc:
                raise CommandError(f"{exc.filename or subject}: {exc.strerror or exc}") from None

    return json_errors(run)
