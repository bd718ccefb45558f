"""What the UI does, without the UI: every button of :mod:`distill.ui_app` calls one method here.

Plain values in (folder paths, numbers, names), plain values out (tables as lists of rows, Markdown,
paths of files written into the UI's workspace). No gradio and no Ray, so all of it is tested
without a browser, and the browser tests only prove the wiring.

The inference path is the CLI's and the HTTP endpoint's: a :class:`~distill.takes.TakeRequest` →
:func:`distill.takes.produce` → :func:`distill.export.write_audio` with the same comment tag, models
found through :class:`~distill.model_catalog.ModelCatalog` and loaded by
:func:`~distill.model_catalog.load_by_key`, takes recorded in the :class:`~distill.history.History`,
presets in the :class:`~distill.sound_presets.PresetBook`. Long actions (preparing, training) are the
CLI's own commands run in the background (:mod:`distill.ui_jobs`).

Every refusal is a :class:`UiError` (or another ``ValueError``) whose message names the field and
the reason; the UI shows it in the page.
"""

from __future__ import annotations

import secrets
import shutil
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from distill.ui_jobs import JobRecord, JobRunner

MAX_MODELS_LOADED = 4  # models kept in memory (each a few MB to a few hundred MB)
KEEP_TAKE_FILES = 40  # playback and export files kept in the workspace (older ones are removed)
THUMBNAIL_SECONDS = 10.0  # the data tab's thumbnails show the start of each file
MAX_THUMBNAILS = 24
THUMBNAIL_RATE = 24000  # Hz: enough for a picture, half the decoding of 48 kHz
UI_RUN_PREFIX = "ui"


class UiError(ValueError):
    """An action the UI refuses; the message is shown in the page as it is."""


@dataclass(frozen=True)
class ScanReport:
    rows: list[list]  # [file, status, seconds, sample rate, channels, reason]
    summary: str  # Markdown
    thumbnails: list[tuple[str, str]]  # (PNG path, caption)
    usable: int


@dataclass(frozen=True)
class GeneratedTake:
    take: object  # distill.loaded_model.Take (kept in the page's session for export)
    audio_path: str  # WAV for the page's player
    image_path: str  # spectrogram PNG
    history_id: str | None
    summary: str


class UiBackend:
    """The UI's actions over one library, one history and one workspace folder."""

    def __init__(self, library: str | None = None, history: str | None = None, workspace: str | Path | None = None,
                 device: str | None = None):
        from distill.model_catalog import ModelCatalog
        from distill.settings import load_settings

        settings = load_settings(library=library, history=history, device=device)
        self.library_location = settings.library
        self.history_location = settings.history
        self.device = settings.device
        self.workspace = Path(workspace) if workspace else default_workspace(settings.history)
        for sub in ("uploads", "takes", "exports", "thumbnails", "jobs"):
            (self.workspace / sub).mkdir(parents=True, exist_ok=True)
        self.jobs = JobRunner(self.workspace / "jobs")
        self.catalog = ModelCatalog(self.library_location, refresh_seconds=1.0)
        self._models: OrderedDict[str, object] = OrderedDict()
        self._models_lock = threading.Lock()

    # ================================================================ Data

    def save_uploads(self, paths: list[str] | None) -> str:
        """Copy uploaded audio files into a new folder of the workspace; returns the folder (to scan, prepare,
        train). Files without an audio extension are left out (a folder upload brings everything in it)."""
        from distill.audio_io import AUDIO_EXTENSIONS

        paths = [p for p in paths or [] if Path(p).name.lower().endswith(AUDIO_EXTENSIONS)
                 and not Path(p).name.startswith(".")]
        if not paths:
            raise UiError("upload: choose one or more audio files (WAV, FLAC, OGG, MP3, AIFF) or a folder of them")
        folder = self.workspace / "uploads" / _stamp()
        folder.mkdir(parents=True)
        used: set[str] = set()
        for path in paths:
            name = Path(path).name
            stem, suffix = Path(name).stem, Path(name).suffix
            n = 1
            while name.casefold() in used:  # two uploaded files of the same name (from different folders)
                n += 1
                name = f"{stem}-{n}{suffix}"
            used.add(name.casefold())
            shutil.copyfile(path, folder / name)
        return str(folder)

    def scan(self, folder: str) -> ScanReport:
        """Which files of ``folder`` can be used, and why not; spectrogram thumbnails of the usable ones."""
        from distill.audio_io import scan_folder

        folder = _folder(folder)
        try:
            entries = scan_folder(folder)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise UiError(f"folder: {exc}") from None
        ok = [e for e in entries if e.status == "ok"]
        rows = [[e.path, e.status, None if e.duration is None else round(e.duration, 2), e.sample_rate, e.channels,
                 e.reason or ""] for e in entries]
        total = sum(e.duration or 0.0 for e in ok)
        rates = sorted({e.sample_rate for e in ok if e.sample_rate})
        lines = [f"**{len(ok)} usable**, {len(entries) - len(ok)} skipped; "
                 f"{_minutes(total)} of usable audio" + (f"; sample rates {', '.join(f'{r} Hz' for r in rates)}"
                                                         if rates else "")]
        if not entries:
            lines.append(f"No audio files in {folder} (supported: WAV, FLAC, OGG/Vorbis, MP3, AIFF).")
        elif not ok:
            lines.append("None of these files can be used; the reasons are in the table.")
        for e in entries:
            if e.status != "ok":
                lines.append(f"- skipped **{e.path}**: {e.reason}")
        return ScanReport(rows, "\n".join(lines), self._thumbnails(folder, ok), len(ok))

    def _thumbnails(self, folder: str, entries) -> list[tuple[str, str]]:
        from distill.audio_io import load_audio
        from distill.source_folder import SourceFolder
        from distill.thumbnail import spectrogram_png

        root = SourceFolder.open(folder)
        out = []
        target = self.workspace / "thumbnails" / _stamp()
        target.mkdir(parents=True, exist_ok=True)
        for i, entry in enumerate(entries[:MAX_THUMBNAILS]):
            try:
                audio = load_audio(root.locate(entry.path), THUMBNAIL_RATE, max_seconds=THUMBNAIL_SECONDS)
                path = target / f"{i:03d}.png"
                path.write_bytes(spectrogram_png(audio, THUMBNAIL_RATE, width=320, height=96))
                out.append((str(path), f"{entry.path} · {entry.duration:.1f} s"))
            except (OSError, ValueError) as exc:  # a file that scanned fine but will not decode now
                out.append(("", f"{entry.path}: no thumbnail ({exc})"))
        _prune(self.workspace / "thumbnails", keep=4)
        return [t for t in out if t[0]]

    def cache_status(self, folder: str, expansion: int = 10) -> str:
        """Is the prepared cache of ``folder`` fresh for ``distill prepare --expansion N``? (metadata only)."""
        from dataclasses import replace as changed

        from distill.prepare import check_cache, default_cache
        from distill.prepare_config import PrepareConfig

        folder = _folder(folder)
        cfg = PrepareConfig()
        cfg = changed(cfg, augment=changed(cfg.augment, expansion=_whole(expansion, "expansion", 1, 100)))
        try:
            plan = check_cache(folder, None, cfg)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise UiError(f"folder: {exc}") from None
        except ValueError as exc:
            return f"Cache: cannot tell ({exc})"
        where = default_cache(folder)
        if plan.fresh:
            return f"Cache **fresh**: {where} is up to date, training starts at once."
        return f"Cache **stale**: {plan.reason or 'not prepared yet'}. Prepare now, or training will do it first."

    def start_prepare(self, folder: str, expansion: int = 10) -> JobRecord:
        self.jobs.ensure_idle()  # before the form's checks: a running job is what the user needs to know
        folder = _folder(folder)
        expansion = _whole(expansion, "expansion", 1, 100)
        return self.jobs.start("prepare", ["prepare", folder, "--expansion", str(expansion), "--yes", "--json"],
                               folder, options={"expansion": expansion})

    # ================================================================ Train

    def start_training(self, folder: str, preset: str = "auto", epochs: int | None = None,
                       max_minutes: float | None = None, workers: int = 1, gpu: bool = False,
                       name: str | None = None) -> JobRecord:
        """Start ``distill train`` on ``folder`` in the background (one job at a time)."""
        from distill.source_folder import SourceFolder
        from distill.takes import safe_name
        from distill.training_run import RUNS_SUBDIR

        self.jobs.ensure_idle()  # before the form's checks: a running job is what the user needs to know
        folder = _folder(folder)
        argv = ["train", folder, "--yes", "--json", "--library", self.library_location]
        if preset and preset != "auto":
            argv += ["--preset", preset]
        argv += _limits(epochs, max_minutes)
        workers = _whole(workers or 1, "workers", 1, 64)
        argv += ["--workers", str(workers)] + (["--gpu"] if gpu else [])
        name = safe_name(name.strip()) if name and name.strip() else \
            f"{UI_RUN_PREFIX}-{safe_name(Path(folder).name)}-{_stamp()}"
        argv += ["--name", name]
        try:
            runs = SourceFolder.open(folder).locate(RUNS_SUBDIR)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise UiError(f"folder: {exc}") from None
        options = {"preset": preset, "epochs": epochs, "max_minutes": max_minutes, "workers": workers, "gpu": gpu}
        return self.jobs.start("train", argv, folder, run=f"{runs.rstrip('/')}/{name}", run_name=name,
                               library=self.library_location, options=options)

    def resume_training(self, epochs: int | None = None, max_minutes: float | None = None) -> JobRecord:
        """Continue the last training run from its latest checkpoint (after Cancel or a failure), with a
        new epoch limit or time budget when given (the only settings a resumed run may change)."""
        record = self._last_training()
        if record is None:
            raise UiError("resume: no training run to continue; start one first")
        if self.jobs.running(record):
            raise UiError(f"resume: run {record.run_name} is still training")
        run = self._run_folder(record)
        # a finished run has its final report (its status is why it stopped: completed, early stop, …);
        # resuming it would only run the ending again and add its model to the library a second time
        if run is not None and run.read_report() is not None:
            raise UiError(f"resume: run {record.run_name} has finished; start a new run instead")
        storage = record.run.rsplit("/", 1)[0]
        argv = ["train", record.data_dir, "--resume", record.run_name, "--storage", storage, "--yes", "--json",
                "--library", self.library_location, *_limits(epochs, max_minutes)]
        options = record.options | {k: v for k, v in (("epochs", epochs), ("max_minutes", max_minutes)) if v}
        return self.jobs.start("train", argv, record.data_dir, run=record.run, run_name=record.run_name,
                               library=self.library_location, options=options)

    def cancel_job(self) -> JobRecord:
        return self.jobs.cancel()

    def _last_training(self) -> JobRecord | None:
        record = self.jobs.current()
        return record if record is not None and record.kind == "train" else None

    @staticmethod
    def _run_folder(record: JobRecord):
        from distill.run_folder import RunFolder

        try:
            return RunFolder.open(record.run) if record.run else None
        except (OSError, ValueError):
            return None

    def job_view(self) -> dict:
        """The current job for the page: ``{kind, running, status (Markdown), fraction, log, error}``."""
        record = self.jobs.current()
        if record is None:
            return {"kind": None, "running": False, "status": "No job yet.", "fraction": None, "log": "",
                    "error": None}
        running = self.jobs.running(record)  # records the end in ``record`` when the job has ended
        lines = self.jobs.log_lines(record, 12)
        error = None if running or record.exit_code == 130 else self.jobs.error(record)
        if running:
            state = "running"
        elif record.cancelled:
            state = "cancelled"
        elif record.exit_code == 130:  # interrupted outside the UI (Ctrl-C, a UI restart lost the record's flag)
            state = "interrupted"
        elif record.exit_code == 0:
            state = "finished"
        else:
            state = "failed"
        what = f"{record.kind} of {record.data_dir}" + (f" (run {record.run_name})" if record.run_name else "")
        status = f"**{record.kind.capitalize()} {state}**: {what}; started {record.started[11:19]} UTC"
        if error:
            status += f"\n\n**Error:** {error}"
        fraction = self.jobs.fraction(lines) if record.kind == "prepare" else None
        return {"kind": record.kind, "running": running, "state": state, "status": status, "fraction": fraction,
                "log": "\n".join(lines), "error": error, "record": record}

    def training_view(self, view: dict | None = None) -> dict:
        """The last training run: status, progress, the run's loss curve (a copy of its ``loss_curve.png``,
        redrawn by the run after every epoch), preview files and the final report. ``view`` is
        :meth:`job_view`'s answer when the caller has it already (the page's poll shows both)."""
        view = view or self.job_view()
        record = view.get("record")
        out = {"status": view["status"], "previews": [], "report": "", "progress": "", "curve": None}
        if record is None or record.kind != "train":
            if record is None:
                out["status"] = "No training run yet."
            return out
        run = self._run_folder(record)
        if run is None:
            return out
        try:
            progress = run.read_progress() or {}
            report = run.read_report()
        except (OSError, ValueError):
            return out  # the folder is being written for the first time
        out["progress"] = _progress_text(progress)
        out["previews"] = _previews(run, self.workspace / "takes", record.id)
        out["curve"] = self._curve_copy(run, record.id)
        if report:
            out["report"] = _report_text(report)
        return out

    def _curve_copy(self, run, job_id: str) -> str | None:
        """The run's loss curve as a workspace file named after its content: a new name whenever the
        run redraws it, so the browser never shows a cached older picture (and a half-updated run
        folder, metrics written but not yet the curve, just shows the previous one a poll longer)."""
        import hashlib

        from distill.run_folder import CURVE

        try:
            png = run.store.read_bytes(CURVE)
        except (OSError, ValueError):
            return None  # not drawn yet (before the first epoch ends)
        path = self.workspace / "takes" / f"{job_id}-curve-{hashlib.blake2b(png, digest_size=6).hexdigest()}.png"
        if not path.exists():
            path.write_bytes(png)
        return str(path)

    # ================================================================ Generate

    def model_choices(self) -> list[tuple[str, str]]:
        """``(label, id)`` of every library model, newest first."""
        return [(f"{e.name} ({e.id})", e.id) for e in self.catalog.entries(fresh=True)]

    def load(self, ref: str):
        """The :class:`~distill.loaded_model.LoadedModel` of a library model (cached, a few at a time)."""
        from distill.library import LibraryError
        from distill.model_catalog import load_by_key, model_key

        if not ref:
            raise UiError("model: pick a model first (train one, or import a .distill file in the Library tab)")
        try:
            entry = self.catalog.find(ref)
        except LibraryError as exc:
            raise UiError(f"model: {exc}") from None
        key = model_key(entry)
        with self._models_lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = load_by_key(self.library_location, key, self.device)
        with self._models_lock:
            self._models[key] = model
            while len(self._models) > MAX_MODELS_LOADED:
                self._models.popitem(last=False)
        return model

    def sliders(self, ref: str) -> list[dict]:
        """The model's sliders: ``{label, name, explained_variance, labelled}``; unlabelled axes say so."""
        from distill.library import sliders

        info = self._info(ref)
        out = []
        for s in sliders((info["meta"] or {}).get("analysis")):
            variance = s["explained_variance"]
            share = f"{100 * variance:.1f}% of the variation" if isinstance(variance, int | float) else \
                "variation unknown"
            labelled = bool(s["descriptor"]) and not s["label"].startswith("Axis ")
            name = s["label"] if labelled else f"{s['label']} (unlabelled)"
            out.append({"label": s["label"], "name": name, "info": share, "labelled": labelled,
                        "explained_variance": variance})
        return out

    def slider_labels(self, ref: str) -> list[str]:
        """The model's slider labels in order (from the loaded model: no library read per take)."""
        return [s.label for s in self.load(ref).space.sliders] if ref else []

    def _info(self, ref: str) -> dict:
        from distill.library import Library, LibraryError

        if not ref:
            raise UiError("model: pick a model first")
        try:
            return Library.open(self.library_location).info(ref)
        except LibraryError as exc:
            raise UiError(f"model: {exc}") from None

    def request(self, *, duration: float, seed: int | None, sliders: dict[str, float], evolution: float,
                spatial: str = "mono", width: float = 0.5, azimuth: float = 0.0, elevation: float = 0.0,
                depth: float = 0.0, loudness: float | None = None, blend: list[tuple[str, float]] = ()):
        """A checked :class:`~distill.takes.TakeRequest` from the form (a random seed when ``seed`` is None)."""
        from distill.takes import TakeRequest

        space = {"mode": spatial}
        if spatial in ("stereo", "binaural"):
            space |= {"width": float(width), "depth": float(depth)}
        if spatial == "binaural":
            space |= {"azimuth": float(azimuth), "elevation": float(elevation)}
        values = {"duration": _number(duration, "duration"),
                  "seed": secrets.randbelow(2**31) if seed is None or seed == "" else _seed(seed),
                  "sliders": {k: float(v) for k, v in sliders.items()}, "evolution": _number(evolution, "evolution"),
                  "spatial": space, "loudness": None if loudness is None else _number(loudness, "loudness"),
                  "blend": [{"model": m, "weight": float(w)} for m, w in blend if m]}
        return TakeRequest.from_dict(values)

    def generate(self, ref: str, request) -> GeneratedTake:
        """Make the take ``request`` asks of model ``ref``: a WAV to play, its spectrogram, a history entry."""
        from distill.export import ExportOptions, write_audio
        from distill.history import History
        from distill.takes import produce, take_comment
        from distill.thumbnail import spectrogram_png

        model = self.load(ref)
        model.check_request(request.duration, request.sliders, request.evolution)
        blend_models = [self.load(m) for m, _ in request.blend]
        take = produce(model, request, blend_models)
        stem = f"{_stamp()}-{secrets.token_hex(3)}"
        audio_path = self.workspace / "takes" / f"{stem}.wav"
        # 16-bit 48 kHz WAV for the page's player: every browser plays it (export writes what the user picks)
        write_audio(audio_path, take.audio, take.sample_rate,
                    ExportOptions("wav", 48000, "16", comment=take_comment(take)))
        image_path = self.workspace / "takes" / f"{stem}.png"
        mono = take.audio if take.audio.ndim == 1 else take.audio.mean(axis=1)
        image_path.write_bytes(spectrogram_png(mono, take.sample_rate, width=768, height=160))
        _prune(self.workspace / "takes", keep=2 * KEEP_TAKE_FILES)
        entry, unrecorded = None, None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                entry = History.open(self.history_location).add(take.audio, take.sample_rate, take.parameters(),
                                                                model.identity, source="ui")
        except (OSError, ValueError) as exc:  # the take is made and playable: say why it is not in the history
            unrecorded = str(exc)
        moved = ", ".join(f"{k} {v:+g}" for k, v in take.sliders.items() if v) or "sliders at 0"
        summary = (f"**{take.model.get('name')}**, seed {take.seed}, {take.duration:g} s, {take.channels} channel(s), "
                   f"evolution {take.evolution:g}; {moved}")
        if take.blend:
            summary += f"; {take.blend['mode']} blend with " + ", ".join(
                f"{m['name']} {m['weight']:g}" for m in take.blend["models"][1:])
        if take.loudness:
            summary += f"; {take.loudness['after_lufs']:.1f} LUFS"
        if entry is not None:
            summary += f" (history {entry.id})"
        else:
            summary += f"\n\n**Not recorded in the history:** {unrecorded}"
        return GeneratedTake(take, str(audio_path), str(image_path), entry.id if entry else None, summary)

    def export(self, take, format: str, sample_rate: int, bit_depth: str | None, title: str = "",
               artist: str = "", album: str = "") -> str:
        """Write ``take`` as the export options ask (the CLI's encoder and comment tag); returns the file."""
        from distill.export import BIT_DEPTHS, ExportOptions, default_extension, write_takes
        from distill.export import Take as FileTake
        from distill.takes import take_comment, take_stem

        if take is None:
            raise UiError("export: generate a take first")
        lossy = format in BIT_DEPTHS and not BIT_DEPTHS[format]  # the page keeps its bit depth when one is picked
        options = ExportOptions(format=format, sample_rate=int(sample_rate), bit_depth=None if lossy else bit_depth,
                                title=title or None, artist=artist or None, album=album or None,
                                comment=take_comment(take))
        options.validate()
        folder = self.workspace / "exports" / _stamp()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (take_stem(take) + default_extension(format))
        write_takes([FileTake(path, take.audio, take.sample_rate, options)])
        _prune(self.workspace / "exports", keep=KEEP_TAKE_FILES)
        return str(path)

    # ---- presets

    def _identity(self, ref: str) -> dict:
        return self.load(ref).identity

    def preset_names(self, ref: str) -> list[str]:
        from distill.sound_presets import PresetBook

        if not ref:
            return []
        return [p.name for p in PresetBook.open(self.library_location).list(self._identity(ref))]

    def save_preset(self, ref: str, name: str, request, overwrite: bool = True) -> str:
        from distill.cli_presets import stored_settings
        from distill.sound_presets import PresetBook

        if not name or not name.strip():
            raise UiError("preset name: give the preset a name")
        book = PresetBook.open(self.library_location)
        preset = book.save(self._identity(ref), name.strip(), stored_settings(request, seed_given=True),
                           overwrite=overwrite)
        return preset.name

    def load_preset(self, ref: str, name: str) -> tuple[dict, list[str]]:
        """The preset's settings (sliders by label) and the sliders the model no longer has."""
        from distill.sound_presets import PresetBook, PresetWarning, settings_for_model

        if not name:
            raise UiError("preset: pick a preset to load")
        preset = PresetBook.open(self.library_location).get(self._identity(ref), name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PresetWarning)
            return settings_for_model(preset, self.slider_labels(ref))

    def delete_preset(self, ref: str, name: str) -> str:
        from distill.sound_presets import PresetBook

        if not name:
            raise UiError("preset: pick a preset to delete")
        return PresetBook.open(self.library_location).delete(self._identity(ref), name).name

    # ---- history

    def _history(self):
        from distill.history import History

        return History.open(self.history_location)

    def history_rows(self, limit: int = 50) -> list[list]:
        """``[id, created, model, seed, seconds, loudness]`` of the newest takes, newest first."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entries = self._history().list(limit=limit)
        return [[e.id, e.created[:19].replace("T", " "), e.model.get("name", "?"), e.parameters.get("seed"),
                 round(e.duration, 2), _lufs(e.measures)] for e in entries]

    @staticmethod
    def history_choices(rows: list[list]) -> list[tuple[str, str]]:
        """``(label, id)`` of :meth:`history_rows`, for the A/B pickers."""
        return [(f"{row[0]} · {row[2]} · seed {row[3]} · {row[4]} s", row[0]) for row in rows]

    def history_audio(self, ref: str) -> str:
        """A playable copy of a history take (its FLAC, copied into the workspace)."""
        if not ref:
            raise UiError("history: pick a take")
        history = self._history()
        entry = history.get(ref)
        path = self.workspace / "takes" / f"history-{entry.id}.flac"
        path.write_bytes(history.store.read_bytes(entry.audio))  # works for a history on object storage too
        return str(path)

    def compare(self, a: str, b: str) -> str:
        """What differs between takes ``a`` and ``b``: parameters and measures, as a Markdown table."""
        if not a or not b:
            raise UiError("compare: pick two takes, A and B")
        result = self._history().compare(a, b)
        lines = [f"| | A ({result['a']['id']}) | B ({result['b']['id']}) |", "|---|---|---|"]
        for key, (va, vb) in result["differences"].items():
            lines.append(f"| {key} | {_cell(va)} | {_cell(vb)} |")
        if len(lines) == 2:
            lines.append("| (no difference in the settings) | | |")
        lines.append("| **measures** | | **B − A** |")
        for name, m in result["measures"].items():
            diff = m["difference"]
            lines.append(f"| {name} | {_cell(m['a'])} / {_cell(m['b'])} | "
                         f"{'–' if diff is None else f'{diff:+.3g}'} |")
        return "\n".join(lines)

    def keep_as_preset(self, ref: str, name: str) -> str:
        from distill.cli_presets import take_preset_settings
        from distill.sound_presets import PresetBook

        if not ref:
            raise UiError("history: pick a take to keep")
        if not name or not name.strip():
            raise UiError("preset name: give the preset a name")
        entry = self._history().get(ref)
        preset = PresetBook.open(self.library_location).save(entry.model, name.strip(),
                                                             take_preset_settings(entry.parameters))
        return f"kept take {entry.id} as preset {preset.name!r} of {entry.model.get('name')}"

    # ================================================================ Library

    def _library(self):
        from distill.library import Library

        return Library.open(self.library_location)

    def library_rows(self, query: str = "") -> list[list]:
        """``[name, id, created, preset, epochs, MR-STFT, sliders]`` of the models matching ``query``."""
        rows = []
        for e in self._library().list(query.strip() or None):
            s = e.summary or {}
            quality = s.get("val_mrstft")
            rows.append([e.name, e.id, e.created[:16].replace("T", " "), s.get("preset") or "",
                         s.get("epochs"), None if not isinstance(quality, int | float) else round(quality, 3),
                         ", ".join(s.get("sliders") or [])])
        return rows

    def details(self, ref: str) -> str:
        """A model's details as Markdown: what ``distill model info`` prints, plus its config and report."""
        import json

        from distill.cli_models import info_lines, slider_line

        info = self._info(ref)
        lines = [f"- **{key}**: {value}" for key, value in info_lines(info)]
        if info["sliders"]:
            lines.append("\n**Sliders**\n")
            lines += [f"- `{slider_line(s).strip()}`" for s in info["sliders"]]
        else:
            lines.append("- **sliders**: none yet (no latent analysis in this model)")
        meta = info["meta"]
        report = meta.get("report")
        if report:
            lines.append("\n**Quality report**\n\n" + _report_text(report))
        lines.append("\n<details><summary>Config</summary>\n\n```json\n"
                     + json.dumps(meta.get("config") or {}, indent=1)[:20000] + "\n```\n</details>")
        return "\n".join(lines)

    def rename(self, ref: str, new_name: str) -> str:
        if not ref:
            raise UiError("library: pick a model to rename")
        old = self._library().resolve(ref)
        entry = self._library().rename(old.id, (new_name or "").strip())
        self.catalog.entries(fresh=True)
        return f"renamed {old.name!r} to {entry.name!r}"

    def delete(self, ref: str, confirmed: bool) -> str:
        if not ref:
            raise UiError("library: pick a model to delete")
        entry = self._library().resolve(ref)
        if not confirmed:
            raise UiError(f"delete: tick the confirmation box to delete {entry.label()} for good")
        removed = self._library().delete(entry.id)
        self.catalog.entries(fresh=True)
        return f"deleted {removed.label()}"

    def import_model(self, path: str | None) -> str:
        if not path:
            raise UiError("import: choose a .distill file first")
        entry = self._library().import_file(path)
        self.catalog.entries(fresh=True)
        return f"imported {entry.label()}"

    def export_model(self, ref: str) -> str:
        if not ref:
            raise UiError("library: pick a model to export")
        folder = self.workspace / "exports" / _stamp()
        folder.mkdir(parents=True, exist_ok=True)
        return self._library().export(ref, folder)


# ==================================================================== helpers


def default_workspace(history: str) -> Path:
    """``ui/`` next to a local history folder; in the user's data folder when the history is a URI."""
    if "://" in history:
        import platformdirs

        return Path(platformdirs.user_data_dir("distill")) / "ui"
    return Path(history).expanduser().parent / "ui"


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + f"{time.time_ns() % 1_000_000:06d}"


def _folder(folder: str | None) -> str:
    text = (folder or "").strip()
    if not text:
        raise UiError("folder: type the path of a folder of audio, or upload files")
    return str(Path(text).expanduser()) if "://" not in text else text


def _whole(value, field: str, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UiError(f"{field}: give a whole number, got {value!r}") from None
    if not number.is_integer() or not low <= number <= high:
        raise UiError(f"{field}: give a whole number from {low} to {high}, got {value!r}")
    return int(number)


def _limits(epochs, max_minutes) -> list[str]:
    """``--epochs`` and ``--max-minutes`` for the values given (0 or empty: the preset's, no budget)."""
    out = []
    if epochs:
        out += ["--epochs", str(_whole(epochs, "epochs", 1, 100_000))]
    if max_minutes:
        if not 0 < _number(max_minutes, "time budget") <= 7 * 24 * 60:
            raise UiError(f"time budget: give minutes from 0 to a week, got {max_minutes!r}")
        out += ["--max-minutes", f"{float(max_minutes):g}"]
    return out


def _number(value, field: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UiError(f"{field}: give a number, got {value!r}") from None


def _seed(value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UiError(f"seed: give a whole number, got {value!r}") from None
    if not number.is_integer() or not 0 <= number < 2**63:
        raise UiError(f"seed: give a whole number from 0 to 2^63-1, got {value!r}")
    return int(number)


def _minutes(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _lufs(measures: dict) -> float | None:
    value = (measures or {}).get("loudness_lufs")
    return round(value, 1) if isinstance(value, int | float) else None


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else str(value).replace("|", "/")


def _prune(folder: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest entries of ``folder`` (the workspace's files are throwaway)."""
    items = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in items[keep:]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def _progress_text(progress: dict) -> str:
    if not progress:
        return "Preparing the data and starting Ray…"
    last = progress.get("last") or {}
    parts = [f"epoch {progress.get('epoch', 0)}/{progress.get('epochs', '?')}"]
    if progress.get("batches") and progress.get("batches") != progress.get("batches_per_epoch"):
        parts.append(f"batch {progress['batches']}/{progress['batches_per_epoch']}")
    if isinstance(last.get("train_loss_total"), int | float):
        parts.append(f"loss {last['train_loss_total']:.3f}")
    if isinstance(last.get("val_mrstft"), int | float):
        parts.append(f"validation MR-STFT {last['val_mrstft']:.3f}")
    if isinstance(progress.get("eta_seconds"), int | float):
        parts.append(f"about {progress['eta_seconds']:.0f} s left")
    if progress.get("state"):
        parts.append(str(progress["state"]))
    return ", ".join(parts)


def _report_text(report: dict) -> str:
    lines = []
    value, ceiling = report.get("val_mrstft"), report.get("ceiling_mrstft")
    if isinstance(value, int | float):
        where = "validation" if report.get("eval_split") == "val" else "training"
        lines.append(f"- MR-STFT **{value:.3f}** on {report.get('eval_chunks', '?')} {where} chunks "
                     "(lower is better)")
    if isinstance(ceiling, int | float):
        lines.append(f"- the representation alone (the best any model can do): {ceiling:.3f}")
    for key in ("stopped", "epochs", "best_epoch"):
        if report.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: {report[key]}")
    if isinstance(report.get("seconds"), int | float):
        lines.append(f"- training time: {report['seconds'] / 60:.1f} min")
    return "\n".join(lines)


def _previews(run, copy_to: Path, prefix: str) -> list[tuple[str, str]]:
    """The newest preview folder's files as ``(local path, caption)``, final previews first."""
    from distill.run_folder import PREVIEWS

    store = run.store
    try:
        files = [p for p in store.list_files(PREVIEWS) if p.endswith(".wav")]  # relative to the run
    except (OSError, ValueError):
        return []
    if not files:
        return []
    folders = sorted({p.rsplit("/", 2)[-2] for p in files}, key=lambda f: (f == "final", f))
    newest = folders[-1]
    chosen = sorted(p for p in files if p.rsplit("/", 2)[-2] == newest)
    out = []
    for p in chosen:
        # a copy in the workspace: the page serves only the workspace, and the run may be on object storage
        local = str(Path(copy_to) / f"{prefix}-{p.replace('/', '_')}")  # a preview file never changes once written
        if not Path(local).exists():
            Path(local).write_bytes(store.read_bytes(p))
        out.append((local, f"{newest}: {p.rsplit('/', 1)[-1][:-4]}"))
    return out
