"""What the jobs' ``--smoke-test`` shares: the example data as DIR and the ``tiny`` preset."""

from __future__ import annotations


def smoke_argv(argv: list[str], defaults: dict[str, str] | None = None) -> list[str]:
    """``argv`` of a ``--smoke-test`` run: DIR (default ``distill-smoke``) filled with the example data,
    ``defaults`` for options not given, then ``--preset tiny --yes`` (the last ``--preset`` wins)."""
    from distill.example_data import write_example_data

    argv = [a for a in argv if a != "--smoke-test"]
    if not argv or argv[0].startswith("-"):  # DIR is optional for a smoke test
        argv = ["distill-smoke", *argv]
    write_example_data(argv[0])
    extra = [item for flag, value in (defaults or {}).items() if flag not in argv for item in (flag, value)]
    return [*argv, *extra, "--preset", "tiny", "--yes"]
