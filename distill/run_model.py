"""The end of a training run: its best weights, latent analysis and report as one ``.distill`` model file.

Rank 0 calls :func:`save_run_model` when training stops for any reason it controls (all epochs
done, early stop, time budget); the file lands in the run folder (``model.distill``), which lives
on the run storage that the driver can read too, and the driver adds it to the user's library.
No Ray here.
"""

from __future__ import annotations

from distill.analysis_data import analyse as analyse_latents
from distill.analysis_data import chunks_from_cache
from distill.model import SpectrogramVAE
from distill.model_file import ModelFile, from_bytes, to_bytes
from distill.prepared import PreparedDataset
from distill.run_folder import RunFolder, now
from distill.stats import SpectralStats
from distill.training_config import TrainingConfig

MODEL_FILE = "model.distill"


def save_run_model(run: RunFolder, prepared: PreparedDataset, model: SpectrogramVAE, cfg: TrainingConfig,
                   stats: SpectralStats, report: dict, analyse: bool = True) -> str:
    """Write ``model.distill`` (the weights ``model`` holds now) into ``run``; returns its location.

    ``analyse=False`` leaves the latent analysis out (sweep trials: only the kept model needs
    sliders, and :func:`keep_in_library` adds them then); it costs ~5–7 s per run on 2 CPUs."""
    info = run.read_run() or {}
    name = info.get("name") or run.display().rstrip("/").rsplit("/", 1)[-1]
    totals = prepared.manifest.get("totals", {})
    training = {"run": run.display(), "data_dir": info.get("data_dir"), "cache": info.get("cache"),
                "preset": cfg.preset, "files": totals.get("files_ok"), "audio_seconds": totals.get("audio_seconds"),
                "epochs": report.get("epochs"), "best_epoch": report.get("best_epoch"),
                "stopped": report.get("stopped"), "seconds": report.get("seconds"), "finished": now()}
    data_name = (info.get("data_dir") or "").rstrip("/").rsplit("/", 1)[-1]
    analysis = analyse_latents(model, *chunks_from_cache(prepared), stats, cfg.prepare, required=False) \
        if analyse else None
    mf = ModelFile.create(model, cfg, stats, name=name, lineage=info.get("lineage") or name,
                          analysis=analysis, training=training, report=report,
                          tags=[t for t in (cfg.preset, data_name) if t],
                          description=f"trained on {totals.get('files_ok', '?')} files from {data_name or '?'}")
    run.store.write_bytes(MODEL_FILE, to_bytes(mf))
    return run.display(MODEL_FILE)


def read_run_model(run: RunFolder) -> ModelFile | None:
    """The run's model file, verified, or ``None`` when it has none (e.g. interrupted before the end)."""
    if not run.store.exists(MODEL_FILE):
        return None
    return from_bytes(run.store.read_bytes(MODEL_FILE), run.display(MODEL_FILE))


def with_analysis(mf: ModelFile, run: RunFolder) -> ModelFile:
    """``mf`` with the latent analysis of the run's prepared cache (as :func:`save_run_model` makes it)."""
    from distill.model_file import build_model, with_meta

    cache = (run.read_run() or {}).get("cache")
    if not cache:
        return mf
    analysis = analyse_latents(build_model(mf, "cpu"), *chunks_from_cache(PreparedDataset.open(cache)), mf.stats,
                               mf.config.prepare, required=False)
    return with_meta(mf, analysis=analysis)


def keep_in_library(run: RunFolder, library: str | None = None, name: str | None = None,
                    tags=(), description: str | None = None) -> dict | None:
    """Add the run's model file to the library (``None``: the settings' one) under ``name`` (default:
    the run's); returns ``{"name", "id", "library"}``, or ``None`` when the run has no model file."""
    from distill.library import Library

    mf = read_run_model(run)
    if mf is None:
        return None
    if mf.meta.get("analysis") is None:  # a sweep trial's model: its sliders are computed now, once
        mf = with_analysis(mf, run)
    lib = Library.open(library)
    entry = lib.add(mf, name=name, tags=tags, description=description)
    return {"name": entry.name, "id": entry.id, "library": lib.display}
