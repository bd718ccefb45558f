"""Deciding what a ``distill train`` call means before anything runs: its config, its run folder, resume.

No Ray and no torch here: the Ray layer (:mod:`distill.ray_layer.train`) calls :func:`plan_run`,
then trains. A new run resolves its :class:`~distill.training_config.TrainingConfig` from a preset
(``auto`` looks at the collection's size), an optional config file and command-line overrides, in
that order, and gets a fresh folder under the run storage. ``resume`` names an existing run (a
name under the storage, or a path/URI) and takes its stored config; only how long it trains
(epochs, time budget) may change.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from distill.audio_io import AudioFileError, probe
from distill.prepare import default_cache
from distill.presets import preset_config
from distill.run_folder import RunFolder, now
from distill.source_folder import SourceFolder
from distill.storage import Store
from distill.training_config import ConfigError, TrainingConfig, load_config_file

RUNS_SUBDIR = ".distill/runs"
RESUMABLE = {"train": {"epochs", "max_minutes"}}  # what --resume may change
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class RunError(ValueError):
    """A run that cannot be started or resumed; the message says which and why."""


@dataclass(frozen=True)
class PlannedRun:
    run: RunFolder
    name: str
    storage: str  # the folder or URI that holds the run folder
    config: TrainingConfig
    data_dir: str  # the audio folder, resolved
    cache: str  # the prepared cache, path or URI
    resumed: bool


def default_storage(data_dir: str | Path) -> str:
    """``DIR/.distill/runs`` of a folder's path or URI."""
    return SourceFolder.open(data_dir).locate(RUNS_SUBDIR)


def collection_size(data_dir: str | Path) -> tuple[int, float]:
    """``(files, seconds)`` of the readable audio under ``data_dir``, from headers only (fast)."""
    folder = SourceFolder.open(data_dir)
    files, seconds = 0, 0.0
    for rel in folder.list_audio():
        try:
            info = probe(folder.locate(rel))
        except AudioFileError:
            continue
        files += 1
        seconds += info.duration
    return files, seconds


def resolve_config(data_dir: str | Path, preset: str | None = None, config_file: str | None = None,
                   overrides: dict | None = None) -> TrainingConfig:
    """Preset (default ``auto``) → config file → ``overrides``; :class:`ConfigError` names what is wrong."""
    file_preset, file_overrides = load_config_file(config_file) if config_file else (None, {})
    name = preset or file_preset or "auto"
    files, seconds = collection_size(data_dir) if name == "auto" else (None, None)
    cfg = preset_config(name, files, seconds)
    if file_overrides:
        cfg = cfg.with_overrides(file_overrides, str(config_file))
    if overrides:
        cfg = cfg.with_overrides(overrides, "command line")
    return cfg


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise RunError(f"run name {name!r}: use letters, digits, '.', '_' or '-' (at most 100 characters)")
    return name


def _locate(resume: str, storage: str) -> tuple[str, str]:
    """A run reference → ``(storage, name)``: a plain name lives under ``storage``, else it is a location."""
    if "/" not in resume and "\\" not in resume and "://" not in resume:
        return storage, check_name(resume)
    location = resume if "://" in resume else str(Path(resume).expanduser().resolve())
    parent, _, name = location.rstrip("/").rpartition("/")
    return parent, name


def plan_run(data_dir: str | Path, *, preset: str | None = None, config_file: str | None = None,
             overrides: dict | None = None, name: str | None = None, storage: str | None = None,
             resume: str | None = None, cache: str | None = None) -> PlannedRun:
    """Resolve the config and the run folder of a new run, or of the run ``resume`` names."""
    try:
        folder = SourceFolder.open(data_dir)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise RunError(str(exc)) from None
    root = folder.location
    storage = storage or folder.locate(RUNS_SUBDIR)
    if resume:
        if preset or config_file or name:
            raise RunError("--resume continues a run with its own config: leave out --preset, --config and --name")
        bad = {f"{section}.{key}" for section, fields in (overrides or {}).items() for key in fields
               if key not in RESUMABLE.get(section, ())}
        if bad:
            raise RunError(f"--resume cannot change {sorted(bad)}; only the epochs and the time budget")
        storage, run_name = _locate(resume, storage)
        run = RunFolder(Store.open(f"{storage.rstrip('/')}/{run_name}"))
        info = run.read_run()
        if info is None:
            raise RunError(f"{run.display()}: no run here to resume")
        if info.get("data_dir") != root:
            raise RunError(f"{run.display()} was trained on {info.get('data_dir')}, not on {root}")
        if cache and cache != info.get("cache"):
            raise RunError(f"{run.display()} uses the cache {info.get('cache')}; leave out --cache to resume it")
        cfg = TrainingConfig.from_dict(info["config"])
        if overrides:
            cfg = cfg.with_overrides(overrides, "command line")
        return PlannedRun(run, run_name, storage, cfg, root, info["cache"], resumed=True)
    cfg = resolve_config(root, preset, config_file, overrides)
    run_name = check_name(name or f"{root.rpartition('/')[2] or 'run'}-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    run = RunFolder(Store.open(f"{storage.rstrip('/')}/{run_name}"))
    if run.exists():
        raise RunError(f"{run.display()}: a run with this name exists; continue it with --resume {run_name} "
                       "or choose another --name")
    return PlannedRun(run, run_name, storage, cfg, root, cache or default_cache(root), resumed=False)


def record_run(planned: PlannedRun, **extra) -> None:
    """Write the run's ``run.json`` (once its data is prepared, so a failed prepare leaves no run behind)."""
    if planned.resumed:
        info = planned.run.read_run() or {}
        planned.run.update_run(status="resuming", config=planned.config.to_dict(),
                               resumes=info.get("resumes", 0) + 1, **extra)
        return
    planned.run.write_run({"name": planned.name, "data_dir": planned.data_dir, "cache": planned.cache,
                           "config": planned.config.to_dict(), "preset": planned.config.preset,
                           # The lineage of every model this run saves: models with one lineage share a
                           # latent space (latent blending is only meaningful between them).
                           "lineage": uuid.uuid4().hex, "status": "created", "created": now(), **extra})


__all__ = ["ConfigError", "PlannedRun", "RunError", "plan_run", "record_run", "resolve_config", "check_name",
           "collection_size", "default_storage"]
