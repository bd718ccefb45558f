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
        from distill.example_data import write_example_data

        argv = [a for a in argv if a != "--smoke-test"]
        if not argv or argv[0].startswith("-"):  # DIR is optional for a smoke test
            argv = ["distill-smoke", *argv]
        write_example_data(argv[0])
        defaults = {"--trials": "2", "--epochs": "1"}
        argv = [*argv, *(item for flag, value in defaults.items() if flag not in argv for item in (flag, value)),
                "--preset", "tiny", "--yes"]  # the last --preset wins
    return distill_main(["sweep", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
