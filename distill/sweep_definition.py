"""A sweep's definition: what it trains, what it searches, where it lives — fixed when it starts.

A sweep folder (``<storage>/<name>/``, storage default ``DIR/.distill/sweeps``) holds
``sweep.json`` (the definition below and the sweep's state), ``tune/`` (Tune's experiment, what
``--resume`` restores), ``runs/<trial id>/`` (each trial's run folder), ``results.csv``,
``objective.png`` and ``best_config.toml``. The definition keeps the base config as overrides
(not the path of the file they came from) and the search space itself, so a resumed sweep runs
exactly what the first call defined, and so do trials on other machines. No Ray here.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from distill.prepare import default_cache
from distill.presets import PRESET_NAMES
from distill.run_folder import now
from distill.source_folder import SourceFolder
from distill.storage import Store
from distill.sweep_space import default_space, load_space, merge
from distill.training_config import load_config_file
from distill.training_run import RunError, check_name, resolve_config

SWEEPS_SUBDIR = ".distill/sweeps"
SWEEP_FILE = "sweep.json"
TUNE_DIR = "tune"
RUNS_DIR = "runs"
RESULTS_CSV = "results.csv"
PLOT = "objective.png"
BEST_CONFIG = "best_config.toml"
DEFAULT_TRIALS = 8
SCHEDULERS = ("asha", "fifo")


class SweepError(ValueError):
    """A sweep that cannot be started, resumed or finished; the message says which and why."""


def data_location(data_dir: str | Path) -> str:
    """The canonical location of the audio folder (resolved path or URI); :class:`SweepError` if unusable."""
    try:
        return SourceFolder.open(data_dir).location
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise SweepError(str(exc)) from None


def sweep_folder(data_dir: str | Path, storage: str | None, name: str) -> Store:
    """The folder of sweep ``name``: under ``storage`` (a folder or URI), default ``DIR/.distill/sweeps``."""
    storage = storage or f"{data_location(data_dir)}/{SWEEPS_SUBDIR}"
    return Store.open(f"{storage.rstrip('/')}/{name}")


def existing_sweeps(data_dir: str | Path, storage: str | None) -> list[str]:
    """Names of the sweeps under ``storage`` (those with a ``sweep.json``)."""
    sweeps = Store.open(storage or f"{data_location(data_dir)}/{SWEEPS_SUBDIR}")
    try:
        names = sweeps.list_dirs()
    except OSError:
        return []
    return sorted(n for n in names if Store.open(sweeps.locate(n)).exists(SWEEP_FILE))


def _listing(data_dir: str | Path, storage: str | None) -> str:
    names = existing_sweeps(data_dir, storage)
    return f"; sweeps there: {', '.join(names)}" if names else ""


def define_sweep(data_dir: str | Path, *, storage: str | None, name: str | None, trials: int,
                 preset: str | None, config_file: str | None, space_file: str | None, tune_lr: bool,
                 scheduler: str, epochs: int | None, cache: str | None, workers: int, gpu: bool,
                 seed: int) -> tuple[dict, Store]:
    """A new sweep's definition and its folder (nothing written yet); errors name the option or field.

    The base config is the preset, then the config file, then ``--epochs``; ``auto`` is resolved
    once, so every trial trains the same regime. The space is checked against that config: every
    value a trial can draw must make a valid config.
    """
    root = data_location(data_dir)
    if scheduler not in SCHEDULERS:
        raise SweepError(f"--scheduler must be one of {list(SCHEDULERS)}, got {scheduler!r}")
    for option, value in (("--trials", trials), ("--epochs", epochs), ("--workers", workers)):
        if value is not None and value < 1:
            raise SweepError(f"{option} must be at least 1, got {value}")
    if preset is not None and preset not in PRESET_NAMES:
        raise SweepError(f"unknown preset {preset!r}; choose one of {list(PRESET_NAMES)}")
    try:
        name = check_name(name or f"sweep-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    except RunError as exc:
        raise SweepError(str(exc).replace("run name", "sweep name")) from None
    folder = sweep_folder(root, storage, name)
    if folder.exists(SWEEP_FILE):
        raise SweepError(f"{folder.display()}: a sweep with this name exists; continue it with --resume --name "
                         f"{name}, or choose another --name")
    length = {"train": {"epochs": epochs}} if epochs is not None else {}
    cfg = resolve_config(root, preset, config_file, length)  # errors name the config file's fields
    base = merge(load_config_file(config_file)[1] if config_file else {}, length)
    space = load_space(space_file) if space_file else default_space(include_lr=tune_lr)
    space.check(cfg, space_file or "the default search space")
    definition = {"name": name, "data_dir": root, "cache": cache or default_cache(root),
                  "preset": cfg.preset.split(":")[-1],  # "auto:balanced" → what auto chose, for every trial
                  "base": base, "space": space.to_dict(), "space_file": space_file, "trials": trials,
                  "scheduler": scheduler, "epochs": cfg.train.epochs, "workers": workers, "gpu": gpu,
                  "seed": seed, "created": now(), "status": "created"}
    return definition, folder


def resumed_sweep(data_dir: str | Path, *, storage: str | None, name: str | None, changed: list[str]
                  ) -> tuple[dict, Store]:
    """The definition and folder of the sweep to continue; ``changed`` lists the defining options the
    caller gave (refused: a resumed sweep runs as it was defined)."""
    root = data_location(data_dir)
    if not name:
        raise SweepError("--resume needs --name: the sweep to continue" + _listing(root, storage))
    if changed:
        raise SweepError(f"--resume continues the sweep with its own settings: leave out {', '.join(changed)}")
    folder = sweep_folder(root, storage, name)
    if not folder.exists(SWEEP_FILE):
        raise SweepError(f"{folder.display()}: no sweep here to resume" + _listing(root, storage))
    try:
        definition = json.loads(folder.read_bytes(SWEEP_FILE))
    except ValueError as exc:
        raise SweepError(f"{folder.display(SWEEP_FILE)}: damaged ({exc})") from None
    if definition.get("data_dir") != root:
        raise SweepError(f"{folder.display()} sweeps {definition.get('data_dir')}, not {root}")
    return definition, folder


def write_definition(folder: Store, definition: dict) -> None:
    """``sweep.json``, atomically (the store writes a temporary file and renames it)."""
    folder.write_bytes(SWEEP_FILE, (json.dumps(definition, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
