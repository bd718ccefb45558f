"""The Gradio UI (``distill ui``): Data, Train, Generate and Library tabs over :class:`~distill.ui_backend.UiBackend`.

The only module that imports gradio. It lays the page out and wires each control to one backend
method; what the controls do is in :mod:`distill.ui_backend` (tested without a browser), and
``tests/test_ui_browser.py`` drives every control in Chromium.

Errors: a backend refusal (``ValueError`` and its kin: every message names the field) becomes a
``gr.Error``, which gradio shows as a message in the page; anything else is logged with its
traceback on the server and the page gets one line, never a stack trace.

Long actions: preparing and training are background jobs (:mod:`distill.ui_jobs`) polled by a
``gr.Timer``, so a reload or a second tab shows the running job; generating shows gradio's spinner.

Gradio notes (6.x): files a handler returns must lie under ``allowed_paths`` (we serve only the
workspace, so previews and history takes are copied there); ``GRADIO_ANALYTICS_ENABLED=False`` keeps
it from calling home, and the theme uses system fonts because the default one loads Google Fonts.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from distill.export import BIT_DEPTHS, FORMAT_RATES, FORMATS, SAMPLE_RATES  # noqa: E402
from distill.presets import PRESET_NAMES  # noqa: E402
from distill.ui_backend import UiBackend  # noqa: E402

log = logging.getLogger("distill.ui")
MAX_SLIDERS = 16
POLL_SECONDS = 2.0
NONE = "(none)"


def friendly(fn):
    """Run a handler; show refusals as readable messages in the page, never a traceback."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, LookupError, OSError) as exc:  # UiError, LibraryError, ExportError, missing files …
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:  # a bug: the log has the traceback, the page one line
            log.exception("UI action %s failed", fn.__name__)
            raise gr.Error(f"something went wrong ({type(exc).__name__}: {exc}); the server's log has the details",
                           print_exception=False) from None

    return run


def build_app(backend: UiBackend) -> gr.Blocks:
    """The whole page (not launched)."""
    with gr.Blocks(title="distill") as app:
        gr.Markdown("# distill\nTrain a model on your own sounds, then explore and export new ones.")
        take_state = gr.State(None)
        with gr.Tabs():
            with gr.Tab("Data", id="data", elem_id="tab-data"):
                data = _data_tab(backend)
            with gr.Tab("Train", id="train", elem_id="tab-train"):
                train = _train_tab(backend, data)
            with gr.Tab("Generate", id="generate", elem_id="tab-generate"):
                gen = _generate_tab(backend, take_state)
            with gr.Tab("Library", id="library", elem_id="tab-library"):
                lib = _library_tab(backend, gen)
        timer = gr.Timer(POLL_SECONDS)
        outputs = [data["job"], *train["outputs"]]
        timer.tick(friendly(lambda: _poll(backend)), outputs=outputs, show_progress="hidden")
        app.load(friendly(lambda: _poll(backend)), outputs=outputs, show_progress="hidden")
        app.load(friendly(train["form_of_last_run"]), outputs=train["form"], show_progress="hidden")
        app.load(friendly(lambda: _all_model_lists(backend.model_choices())),
                 outputs=gen["model_lists"] + [lib["model"]])
        app.load(friendly(lambda: _history_lists(backend)), outputs=gen["history_lists"])
        app.load(friendly(lambda q="": backend.library_rows(q)), outputs=lib["table"])
    return app


# ============================================================================ Data


def _data_tab(backend: UiBackend) -> dict:
    gr.Markdown("Pick a folder of audio on this computer, or upload files. Then check what can be used.")
    with gr.Row():
        folder = gr.Textbox(label="Folder of audio", placeholder="/path/to/my/sounds", elem_id="data-folder", scale=4)
        scan = gr.Button("Scan", elem_id="data-scan", scale=1)
    with gr.Row():
        upload = gr.File(label="…or upload audio files", file_count="multiple", type="filepath",
                         elem_id="data-upload", scale=4)
        upload_folder = gr.UploadButton("Upload a folder", file_count="directory", elem_id="data-upload-folder",
                                        scale=1)
    summary = gr.Markdown(elem_id="data-summary")
    table = gr.Dataframe(headers=["file", "status", "seconds", "sample rate", "channels", "reason"],
                         interactive=False, elem_id="data-table", wrap=True)
    gallery = gr.Gallery(label="Spectrograms (first 10 s of each usable file)", columns=4, height="auto",
                         object_fit="contain", elem_id="data-thumbs")
    cache = gr.Markdown(elem_id="data-cache")
    with gr.Row():
        expansion = gr.Number(value=10, precision=0, minimum=1, maximum=100, label="Augmented variants per chunk",
                              elem_id="data-expansion")
        prepare = gr.Button("Prepare", elem_id="data-prepare")
    job = gr.HTML(elem_id="data-job")

    def do_scan(path, n):
        report = backend.scan(path)
        return report.summary, report.rows, report.thumbnails, backend.cache_status(path, n)

    def do_upload(paths, n):
        target = backend.save_uploads(paths)
        return (target, *do_scan(target, n))

    scan.click(friendly(do_scan), [folder, expansion], [summary, table, gallery, cache])
    folder.submit(friendly(do_scan), [folder, expansion], [summary, table, gallery, cache])
    upload.upload(friendly(do_upload), [upload, expansion], [folder, summary, table, gallery, cache])
    upload_folder.upload(friendly(do_upload), [upload_folder, expansion], [folder, summary, table, gallery, cache])
    expansion.change(friendly(lambda path, n: backend.cache_status(path, n) if path else ""), [folder, expansion],
                     cache)
    prepare.click(friendly(lambda path, n: (backend.start_prepare(path, n), _job_html(backend))[1]),
                  [folder, expansion], job)
    return {"folder": folder, "job": job}


def _job_html(backend: UiBackend, view: dict | None = None) -> str:
    view = view or backend.job_view()
    html = _markdown_html(view["status"])
    if view["running"] and view["fraction"] is not None:
        html += f'<progress max="1" value="{view["fraction"]:.3f}" style="width:100%"></progress>'
    elif view["running"]:
        html += '<progress style="width:100%"></progress>'
    if view["log"]:
        html += f"<pre class='job-log'>{_escape(view['log'])}</pre>"
    return f"<div class='job' data-state='{view.get('state', 'none')}'>{html}</div>"


# ============================================================================ Train


def _train_tab(backend: UiBackend, data: dict) -> dict:
    gr.Markdown("Training runs in the background on Ray: you may close or reload this page, it keeps going.")
    with gr.Row():
        folder = gr.Textbox(label="Folder of audio", elem_id="train-folder", scale=3)
        preset = gr.Dropdown(list(PRESET_NAMES), value="auto", label="Preset", elem_id="train-preset", scale=1)
        name = gr.Textbox(label="Run name (optional)", elem_id="train-name", scale=2)
    with gr.Row():
        epochs = gr.Number(value=0, precision=0, minimum=0, label="Epochs (0: the preset's)",
                           elem_id="train-epochs")
        minutes = gr.Number(value=0, minimum=0, label="Time budget, minutes (0: none)", elem_id="train-minutes")
        workers = gr.Number(value=1, precision=0, minimum=1, label="Workers", elem_id="train-workers")
        gpu = gr.Checkbox(label="One GPU per worker", elem_id="train-gpu")
    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="train-start")
        cancel = gr.Button("Cancel", elem_id="train-cancel")
        resume = gr.Button("Resume", elem_id="train-resume")
    status = gr.Markdown(elem_id="train-status")
    progress = gr.Markdown(elem_id="train-progress")
    # the run's own loss_curve.png (training loss, validation MR-STFT and the representation's ceiling),
    # redrawn after every epoch; gradio's LinePlot drew its axes but no lines here (6.31)
    chart = gr.Image(type="filepath", label="Loss and validation MR-STFT", interactive=False,
                     elem_id="train-chart", height=320)
    with gr.Row():
        previews = [gr.Audio(type="filepath", label=f"Preview {i + 1}", visible=False, elem_id=f"train-preview-{i}")
                    for i in range(3)]
    report = gr.Markdown(elem_id="train-report")
    data["folder"].change(lambda path: path, data["folder"], folder)

    def do_start(path, preset_name, n_epochs, max_minutes, n_workers, use_gpu, run_name):
        backend.start_training(path, preset_name, n_epochs, max_minutes, n_workers, use_gpu, run_name)
        return _train_outputs(backend)

    outputs = [status, progress, chart, *previews, report]
    start.click(friendly(do_start), [folder, preset, epochs, minutes, workers, gpu, name], outputs)
    cancel.click(friendly(lambda: (backend.cancel_job(), _train_outputs(backend))[1]), None, outputs)
    # a resumed run keeps its config; only the epoch limit and the time budget may change
    resume.click(friendly(lambda n, m: (backend.resume_training(n, m), _train_outputs(backend))[1]),
                 [epochs, minutes], outputs)

    def form_of_last_run():
        """The form as the last training run was started, so a reload or a second tab shows its settings."""
        record = backend.jobs.current()
        if record is None or record.kind != "train":
            return tuple(gr.update() for _ in form)
        o = record.options
        return (record.data_dir, o.get("preset") or "auto", o.get("epochs") or 0, o.get("max_minutes") or 0,
                o.get("workers") or 1, bool(o.get("gpu")), record.run_name or "")

    form = [folder, preset, epochs, minutes, workers, gpu, name]
    return {"outputs": outputs, "form": form, "form_of_last_run": form_of_last_run}


def _train_outputs(backend: UiBackend, job: dict | None = None) -> tuple:
    view = backend.training_view(job)
    players = []
    for i in range(3):
        if i < len(view["previews"]):
            path, caption = view["previews"][i]
            players.append(gr.update(value=path, label=caption, visible=True))
        else:
            players.append(gr.update(visible=False))
    return (view["status"], view["progress"], view["curve"], *players, view["report"])


def _poll(backend: UiBackend) -> tuple:
    """What the timer refreshes: the job under the Data tab and the Train tab (one read of the job)."""
    job = backend.job_view()
    return (_job_html(backend, job), *_train_outputs(backend, job))


# ============================================================================ Generate


def _generate_tab(backend: UiBackend, take_state: gr.State) -> dict:
    with gr.Row():
        model = gr.Dropdown(label="Model", choices=[], elem_id="gen-model", scale=4)
        refresh = gr.Button("↻ Models", elem_id="gen-refresh", scale=1)
    slider_note = gr.Markdown(elem_id="gen-slider-note")
    sliders = [gr.Slider(-10, 10, value=0, step=0.5, visible=False, elem_id=f"gen-slider-{i}")
               for i in range(MAX_SLIDERS)]
    with gr.Row():
        duration = gr.Number(value=4.0, minimum=0.1, maximum=600, label="Duration (s)", elem_id="gen-duration")
        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="gen-seed")
        fresh_seed = gr.Checkbox(value=False, label="New seed each time", elem_id="gen-fresh-seed")
        dice = gr.Button("🎲 Randomise seed", elem_id="gen-dice")
        evolution = gr.Slider(0, 1, value=0.3, step=0.05, label="Evolution (0 static … 1 wandering)",
                              elem_id="gen-evolution")
    with gr.Accordion("Space and loudness", open=False, elem_id="gen-space"):
        with gr.Row():
            spatial = gr.Radio(["mono", "stereo", "binaural"], value="mono", label="Output", elem_id="gen-spatial")
            width = gr.Slider(0, 1, value=0.5, step=0.05, label="Width", visible=False, elem_id="gen-width")
            depth = gr.Slider(0, 1, value=0, step=0.05, label="Depth (room)", visible=False, elem_id="gen-depth")
            azimuth = gr.Slider(-180, 180, value=0, step=5, label="Azimuth °", visible=False, elem_id="gen-azimuth")
            elevation = gr.Slider(-90, 90, value=0, step=5, label="Elevation °", visible=False,
                                  elem_id="gen-elevation")
        with gr.Row():
            use_loudness = gr.Checkbox(value=False, label="Normalise loudness", elem_id="gen-use-loudness")
            loudness = gr.Slider(-60, -5, value=-16, step=0.5, label="Target (LUFS)", elem_id="gen-loudness")
    with gr.Accordion("Blend with other models", open=False, elem_id="gen-blend"):
        blend_models, blend_weights = [], []
        for i in range(2):
            with gr.Row():
                blend_models.append(gr.Dropdown(label=f"Blend model {i + 1}", choices=[NONE], value=NONE,
                                                elem_id=f"gen-blend-model-{i}"))
                blend_weights.append(gr.Slider(0, 1, value=0.3, step=0.05, label="Weight",
                                               elem_id=f"gen-blend-weight-{i}"))
    generate = gr.Button("Generate", variant="primary", elem_id="gen-go")
    summary = gr.Markdown(elem_id="gen-summary")
    audio = gr.Audio(type="filepath", label="Take", interactive=False, elem_id="gen-audio")
    image = gr.Image(type="filepath", label="Spectrogram", interactive=False, elem_id="gen-image", height=200)

    with gr.Accordion("Export", open=True, elem_id="gen-export"):
        with gr.Row():
            fmt = gr.Dropdown(list(FORMATS), value="wav", label="Format", elem_id="gen-format")
            rate = gr.Dropdown([str(r) for r in SAMPLE_RATES], value="48000", label="Sample rate (Hz)",
                               elem_id="gen-rate")
            depth_bits = gr.Dropdown(list(BIT_DEPTHS["wav"]), value="24", label="Bit depth (WAV, FLAC)",
                                     elem_id="gen-bits")
        with gr.Row():
            title = gr.Textbox(label="Title", elem_id="gen-title")
            artist = gr.Textbox(label="Artist", elem_id="gen-artist")
            album = gr.Textbox(label="Album", elem_id="gen-album")
        export = gr.Button("Export", elem_id="gen-export-go")
        export_file = gr.File(label="Exported file", interactive=False, elem_id="gen-export-file")

    with gr.Accordion("Presets", open=True, elem_id="gen-presets"):
        with gr.Row():
            preset_name = gr.Textbox(label="Preset name", elem_id="gen-preset-name")
            save_preset = gr.Button("Save preset", elem_id="gen-preset-save")
        with gr.Row():
            preset_pick = gr.Dropdown(label="Presets of this model", choices=[], elem_id="gen-preset-pick")
            load_preset = gr.Button("Load", elem_id="gen-preset-load")
            delete_preset = gr.Button("Delete", elem_id="gen-preset-delete")
        preset_note = gr.Markdown(elem_id="gen-preset-note")

    with gr.Accordion("History: A/B", open=True, elem_id="gen-history"):
        history_table = gr.Dataframe(headers=["id", "created (UTC)", "model", "seed", "seconds", "LUFS"],
                                     interactive=False, elem_id="gen-history-table")
        with gr.Row():
            pick_a = gr.Dropdown(label="A", choices=[], elem_id="gen-history-a")
            pick_b = gr.Dropdown(label="B", choices=[], elem_id="gen-history-b")
        with gr.Row():
            audio_a = gr.Audio(type="filepath", label="A", interactive=False, elem_id="gen-audio-a")
            audio_b = gr.Audio(type="filepath", label="B", interactive=False, elem_id="gen-audio-b")
        comparison = gr.Markdown(elem_id="gen-compare")
        with gr.Row():
            keep_name = gr.Textbox(label="Keep A as preset named", elem_id="gen-keep-name")
            keep = gr.Button("Keep as preset", elem_id="gen-keep")
        keep_note = gr.Markdown(elem_id="gen-keep-note")

    model_lists = [model, *blend_models]
    history_lists = [history_table, pick_a, pick_b]
    controls = [duration, seed, fresh_seed, evolution, spatial, width, azimuth, elevation, depth, use_loudness,
                loudness, *blend_models, *blend_weights]

    def read_request(ref, values):
        n = len(sliders)
        positions, rest = values[:n], values[n:]
        (dur, seed_value, fresh, evo, mode, wid, azi, ele, dep, use_loud, loud, bm1, bm2, bw1, bw2) = rest
        labels = backend.slider_labels(ref)
        chosen = {label: float(v) for label, v in zip(labels, positions, strict=False)}
        blend = [(m, w) for m, w in ((bm1, bw1), (bm2, bw2)) if m and m != NONE]
        return backend.request(duration=dur, seed=None if fresh else seed_value, sliders=chosen, evolution=evo,
                               spatial=mode, width=wid, azimuth=azi, elevation=ele, depth=dep,
                               loudness=loud if use_loud else None, blend=blend)

    def pick_model(ref):
        specs = backend.sliders(ref) if ref else []
        updates = []
        for i in range(MAX_SLIDERS):
            if i < len(specs):
                s = specs[i]
                updates.append(gr.update(visible=True, value=0, label=f"{s['name']}", info=s["info"]))
            else:
                updates.append(gr.update(visible=False, value=0))
        if not ref:
            note = "Pick a model (train one in the Train tab, or import one in the Library tab)."
        elif not specs:
            note = "This model has no sliders yet (no latent analysis)."
        else:
            shown = specs[:MAX_SLIDERS]
            unlabelled = sum(not s["labelled"] for s in shown)
            note = (f"{len(shown)} sliders, most of the variation first"
                    + (f"; {unlabelled} unlabelled axis/axes: directions no sound descriptor explained" if
                       unlabelled else ""))
        names = backend.preset_names(ref) if ref else []
        return (*updates, note, gr.update(choices=names, value=names[0] if names else None))

    def do_generate(ref, *values):
        request = read_request(ref, list(values))
        made = backend.generate(ref, request)
        return (made.audio_path, made.image_path, made.summary, made.take, request.seed,
                *_history_lists(backend))

    def do_export(take, format_, sample_rate, bits, title_, artist_, album_):
        return backend.export(take, format_, int(sample_rate), bits, title_, artist_, album_)

    def do_save_preset(ref, name, *values):
        request = read_request(ref, list(values))
        saved = backend.save_preset(ref, name, request)
        names = backend.preset_names(ref)
        return f"saved preset {saved!r}", gr.update(choices=names, value=saved)

    def do_load_preset(ref, name):
        settings, missing = backend.load_preset(ref, name)
        labels = backend.slider_labels(ref)
        positions = settings.get("sliders") or {}
        space = settings.get("spatial") or {}
        blend = list(settings.get("blend") or [])[:2]
        blend += [{"model": NONE, "weight": 0.3}] * (2 - len(blend))
        note = f"loaded preset {name!r}" + (f"; the model no longer has {', '.join(missing)}" if missing else "")
        loud = settings.get("loudness")
        return (*[gr.update(value=positions.get(labels[i], 0.0)) if i < len(labels) else gr.update()
                  for i in range(MAX_SLIDERS)],
                settings.get("duration", 4.0), settings.get("seed") if settings.get("seed") is not None else 0,
                settings.get("seed") is None, settings.get("evolution", 0.3), space.get("mode", "mono"),
                space.get("width", 0.5), space.get("azimuth", 0.0), space.get("elevation", 0.0),
                space.get("depth", 0.0), loud is not None, loud if loud is not None else -16,
                *[b["model"] for b in blend], *[b["weight"] for b in blend], note)

    def do_delete_preset(ref, name):
        deleted = backend.delete_preset(ref, name)
        names = backend.preset_names(ref)
        return f"deleted preset {deleted!r}", gr.update(choices=names, value=names[0] if names else None)

    def spatial_controls(mode):
        return (gr.update(visible=mode != "mono"), gr.update(visible=mode != "mono"),
                gr.update(visible=mode == "binaural"), gr.update(visible=mode == "binaural"))

    model.change(friendly(pick_model), model, [*sliders, slider_note, preset_pick])
    refresh.click(friendly(lambda: _model_lists(backend.model_choices())), None, model_lists)
    dice.click(lambda: secrets.randbelow(2**31), None, seed)
    spatial.change(spatial_controls, spatial, [width, depth, azimuth, elevation])

    def format_choices(format_, current):
        """Lossy formats have no bit depth, and MP3 stops at 48 kHz: the choices follow the format
        (distill.export's own tables)."""
        depths = BIT_DEPTHS[format_]
        rates = [str(r) for r in FORMAT_RATES.get(format_, SAMPLE_RATES)]
        return (gr.update(interactive=bool(depths)),
                gr.update(choices=rates, value=current if current in rates else rates[-1]))

    fmt.change(format_choices, [fmt, rate], [depth_bits, rate])
    generate.click(friendly(do_generate), [model, *sliders, *controls],
                   [audio, image, summary, take_state, seed, *history_lists])
    export.click(friendly(do_export), [take_state, fmt, rate, depth_bits, title, artist, album], export_file)
    save_preset.click(friendly(do_save_preset), [model, preset_name, *sliders, *controls], [preset_note, preset_pick])
    load_preset.click(friendly(do_load_preset), [model, preset_pick], [*sliders, *controls, preset_note])
    delete_preset.click(friendly(do_delete_preset), [model, preset_pick], [preset_note, preset_pick])
    pick_a.change(friendly(lambda ref: backend.history_audio(ref) if ref else None), pick_a, audio_a)
    pick_b.change(friendly(lambda ref: backend.history_audio(ref) if ref else None), pick_b, audio_b)
    for pick in (pick_a, pick_b):
        pick.change(friendly(lambda a, b: backend.compare(a, b) if a and b else ""), [pick_a, pick_b], comparison)
    keep.click(friendly(lambda ref, name: backend.keep_as_preset(ref, name)), [pick_a, keep_name], keep_note)
    keep.click(friendly(lambda ref: gr.update(choices=backend.preset_names(ref))), model, preset_pick)
    return {"model": model, "model_lists": model_lists, "history_lists": history_lists}


def _model_lists(choices: list[tuple[str, str]]) -> tuple:
    """The Generate tab's model picker (first model chosen) and its two blend pickers, for ``choices``."""
    first = choices[0][1] if choices else None
    return (gr.update(choices=choices, value=first),
            *[gr.update(choices=[(NONE, NONE), *choices], value=NONE) for _ in range(2)])


def _all_model_lists(choices: list[tuple[str, str]]) -> tuple:
    """:func:`_model_lists` and the Library tab's picker (nothing chosen there)."""
    return (*_model_lists(choices), gr.update(choices=choices, value=None))


def _history_lists(backend: UiBackend) -> tuple:
    rows = backend.history_rows()
    choices = backend.history_choices(rows)
    a = choices[1][1] if len(choices) > 1 else None
    b = choices[0][1] if choices else None
    return rows, gr.update(choices=choices, value=a), gr.update(choices=choices, value=b)


# ============================================================================ Library


def _library_tab(backend: UiBackend, gen: dict) -> dict:
    with gr.Row():
        query = gr.Textbox(label="Search (name, tags, description)", elem_id="lib-search", scale=4)
        search = gr.Button("Search", elem_id="lib-search-go", scale=1)
    table = gr.Dataframe(headers=["name", "id", "created (UTC)", "preset", "epochs", "MR-STFT", "sliders"],
                         interactive=False, elem_id="lib-table", wrap=True)
    model = gr.Dropdown(label="Model", choices=[], elem_id="lib-model")
    details = gr.Markdown(elem_id="lib-details")
    with gr.Row():
        new_name = gr.Textbox(label="New name", elem_id="lib-new-name")
        rename = gr.Button("Rename", elem_id="lib-rename")
    with gr.Row():
        confirm = gr.Checkbox(label="Yes, delete this model for good", elem_id="lib-confirm")
        delete = gr.Button("Delete", variant="stop", elem_id="lib-delete")
    note = gr.Markdown(elem_id="lib-note")
    with gr.Row():
        import_file = gr.File(label="Import a .distill file", file_types=[".distill"], type="filepath",
                              elem_id="lib-import")
        with gr.Column():
            export = gr.Button("Export the model as a .distill file", elem_id="lib-export")
            exported = gr.File(label="Exported model", interactive=False, elem_id="lib-exported")

    def refreshed(message: str, q: str):
        return (message, backend.library_rows(q or ""), *_all_model_lists(backend.model_choices()))

    after_change = [note, table, *gen["model_lists"], model]
    search.click(friendly(lambda q: backend.library_rows(q or "")), query, table)
    query.submit(friendly(lambda q: backend.library_rows(q or "")), query, table)
    model.change(friendly(lambda ref: backend.details(ref) if ref else ""), model, details)
    rename.click(friendly(lambda ref, name, q: refreshed(backend.rename(ref, name), q)), [model, new_name, query],
                 after_change)
    # the box is not an output of the delete itself: a refused delete would cover it with an error badge
    delete.click(friendly(lambda ref, ok, q: refreshed(backend.delete(ref, ok), q)), [model, confirm, query],
                 after_change).success(lambda: False, None, confirm)
    import_file.upload(friendly(lambda path, q: refreshed(backend.import_model(path), q)), [import_file, query],
                       after_change)
    export.click(friendly(backend.export_model), model, exported)
    return {"model": model, "table": table}


# ============================================================================ launching


def launch(backend: UiBackend, host: str = "127.0.0.1", port: int = 7860, open_browser: bool = False) -> None:
    """Serve the UI until Ctrl-C."""
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    build_app(backend).queue(default_concurrency_limit=2).launch(
        server_name=host, server_port=port, inbrowser=open_browser, theme=theme, quiet=True,
        allowed_paths=[str(backend.workspace)], footer_links=["settings"], css=CSS)


CSS = ".job-log {max-height: 12em; overflow: auto; font-size: 0.8em}"


def _markdown_html(text: str) -> str:
    """The little Markdown the job status uses (``**bold**``, paragraphs) as HTML."""
    import re

    html = _escape(text)
    html = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html)
    return "".join(f"<p>{part}</p>" for part in html.split("\n\n"))


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)
