"""``ray job submit … -- python jobs/sweep.py DIR [options]``: the same options as ``distill sweep``.

It runs the very same command (``distill.cli``), so a job and a laptop sweep cannot drift apart.
Inside a job ``RAY_ADDRESS`` is set, so the trials run on the cluster instead of a local Ray.
``--smoke-test`` sweeps two one-epoch trials of the ``tiny`` preset on the project's example data
(written to DIR, default ``./distill-smoke``): a few-minute check that Tune, Train, the storage
and the install work together.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from distill.cli import main as distill_main

    if "--smoke-test" in argv:
        from _smoke import smoke_argv

        argv = smoke_argv(argv, {"--trials": "2", "--epochs": "1"})
    return distill_main(["sweep", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
