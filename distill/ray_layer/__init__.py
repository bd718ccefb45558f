"""The one place that wires the pure core into Ray (Data now; Train, Tune and Serve later).

``ensure_ray`` connects to the cluster when there is one to connect to (``RAY_ADDRESS`` is set by
``ray job submit`` and by users of an existing cluster) and otherwise starts an embedded local Ray,
so the same code runs on a laptop and on a cluster.

Learned the hard way (Ray 2.60): ``ray.init()`` with no address may attach to a cluster some other
process started; ``address="local"`` always starts our own. Token authentication is on by default
for local clusters: the first ``ray.init`` writes ``~/.ray/auth_token``. Never ``ray stop`` on a
shared machine; ``ray.shutdown()`` stops only what this process started.
"""

from __future__ import annotations

import logging
import os
import signal
import threading


def ensure_ray(num_cpus: int | None = None) -> None:
    """Connect to ``RAY_ADDRESS`` if set, else start a local Ray with ``num_cpus`` CPUs (default: all)."""
    import ray

    if ray.is_initialized():
        return
    # Token auth stays on (Ray's default); only its "auth is enabled" notice is silenced, because
    # the CLI's users did not ask for a cluster and cannot act on it. README says how to connect.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    options = {"logging_level": logging.WARNING}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True, **options)
    else:
        # The embedded Ray's workers do not print to the console: Ray's own INFO lines (datasets
        # finished, reports, actor notices) buried our progress, and every failure reaches the
        # user anyway as an exception that we turn into one readable line. DISTILL_RAY_LOGS=1
        # shows them; they are always in /tmp/ray/session_latest/logs.
        # Ctrl-C in a terminal goes to the whole foreground process group, and the embedded Ray's
        # processes are in ours: they died at once, the driver with them, before our handler
        # could say anything. Started with SIGINT ignored, they inherit that (and so do the
        # workers they start); the driver gets its handler back and stops cleanly.
        # No dashboard either, unless DISTILL_RAY_DASHBOARD=1: nobody sees its address (the lines
        # above), and its two processes cost every start ~1-2 s and a share of 2 CPUs while training
        # (measured: ray.init 7.4-7.6 s without, 8.2-9.8 s with, on this 2-CPU machine).
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        try:
            ray.init(address="local", num_cpus=num_cpus,
                     include_dashboard=os.environ.get("DISTILL_RAY_DASHBOARD") == "1",
                     log_to_driver=os.environ.get("DISTILL_RAY_LOGS") == "1", **options)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # signal handlers live only there


def configure_ray_data() -> None:
    """Ray Data settings for our pipelines: our own progress instead of Ray's, no CPU reservation.

    Ray Data reserves part of the CPUs per operator; with our single fused operator on a 2-CPU
    laptop that left one CPU idle between tasks (measured: 16 tasks of 0.5 s started 0.62 s apart
    in pairs with reservation, 0.51 s without). Our memory is bounded by task size instead.
    """
    from ray.data import DataContext

    context = DataContext.get_current()
    context.op_resource_reservation_enabled = False
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # It warns (once) that progress bars are off — which is what we asked for.
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
