"""Starting a command as a terminal would, for the tests that press Ctrl-C."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` for a child that Ctrl-C must reach: SIGINT back at its default.

    A shell runs background jobs (``make test &``, a CI step started with ``&``) with SIGINT
    ignored, and children inherit that; Python then installs no KeyboardInterrupt handler, and
    ``distill train`` rightly ignores Ctrl-C, as a background job should. A command started from
    a terminal has SIGINT at its default, which is what these tests are about.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
