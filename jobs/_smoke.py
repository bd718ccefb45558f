"""What the jobs' ``--smoke-test`` shares: the example data as DIR and the ``tiny`` preset."""

from __future__ import annotations


def smoke_argv(argv: list[str], defaults: dict[str, str] | None = None,
               tiny: tuple[str, ...] = ("--preset", "tiny")) -> list[str]:
    """``argv`` of a ``--smoke-test`` run: DIR (default ``distill-smoke``) filled with the example data,
    ``defaults`` for options not given, then ``tiny`` (the options of the ``tiny`` preset; the last of
    a repeated option wins) and ``--yes``."""
    from distill.example_data import write_example_data
    from distill.storage import is_uri

    argv = [a for a in argv if a != "--smoke-test"]
    if not argv or argv[0].startswith("-"):  # DIR is optional for a smoke test
        argv = ["distill-smoke", *argv]
    if is_uri(argv[0]):  # on a cluster DIR is on storage every node reads: the example data goes there
        _upload_example_data(argv[0])
    else:
        write_example_data(argv[0])
    extra = [item for flag, value in (defaults or {}).items() if flag not in argv for item in (flag, value)]
    return [*argv, *extra, *tiny, "--yes"]


def _upload_example_data(uri: str) -> None:
    """The example data at ``uri`` (files already there are left as they are, so a rerun reuses its cache)."""
    import tempfile
    from pathlib import Path

    from distill.example_data import write_example_data
    from distill.storage import Store

    store = Store.open(uri)
    with tempfile.TemporaryDirectory() as scratch:
        for path in write_example_data(scratch):
            if not store.exists(path.name):
                store.write_bytes(path.name, Path(path).read_bytes())
