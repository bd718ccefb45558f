"""``ray job submit … -- python jobs/prepare.py DIR [options]``: the same options as ``distill prepare``.

It runs the very same command (``distill.cli``), so a job and a laptop run cannot drift apart.
Inside a job ``RAY_ADDRESS`` is set, so the decoding and augmentation run as Ray Data tasks on the
cluster. On a cluster DIR and ``--cache`` should be storage URIs (``s3://bucket/sounds``) that every
node can read. ``--smoke-test`` prepares the project's example data (written to DIR, default
``./distill-smoke``) as the ``tiny`` preset does, so a following ``jobs/train.py --smoke-test`` reuses it.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from distill.cli import main as distill_main

    if "--smoke-test" in argv:
        from _smoke import smoke_argv

        argv = smoke_argv(argv, tiny=("--expansion", "1"))  # what the tiny preset prepares, so train reuses it
    return distill_main(["prepare", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
