"""``ray job submit … -- python jobs/train.py DIR [options]``: the same options as ``distill train``.

It runs the very same command (``distill.cli``), so a job and a laptop run cannot drift apart.
Inside a job ``RAY_ADDRESS`` is set, so training joins the cluster instead of starting a local Ray.
``--smoke-test`` trains the ``tiny`` preset on the project's example data (written to DIR, default
``./distill-smoke``): a one-minute check that the cluster, the storage and the install work.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from distill.cli import main as distill_main

    if "--smoke-test" in argv:
        from _smoke import smoke_argv

        argv = smoke_argv(argv)
    return distill_main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
