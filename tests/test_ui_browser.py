"""The UI in a real browser: ``distill ui`` as a real process, Debian's Chromium driven by Playwright.

Every control the issue lists is exercised: sliders, generate, the audio player's file, export with
format and bit depth, presets, history A/B and "keep as preset", spatial and blend, the Library's
search, details, rename, delete (with its confirmation), import and export, the Data tab's upload
and scan with a bad file, preparing, and training in the background (a second tab sees the same
run; cancel and resume). Screenshots of each tab go to ``test-artifacts/ui/`` (not committed).

Needs Chromium (``make browser`` installs Debian's package). Without it these tests fail, saying so,
unless ``DISTILL_NO_BROWSER=1`` is set, which skips them.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from ports import free_port
from tiny_models import tiny_model_file, trained_tiny_model_file

from distill.history import History
from distill.library import Library
from distill.sound_presets import PresetBook

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("DISTILL_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
ARTIFACTS = ARTIFACTS / "ui"
# Without the background-networking flags Chromium keeps calling Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP = 60_000  # ms: the longest a UI action (a generation on a loaded CI machine) may take


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A running ``distill ui`` over a library with a trained tiny model and a second one to blend."""
    root = tmp_path_factory.mktemp("ui")
    library = Library.open(root / "library")
    main = library.add(trained_tiny_model_file("drone", steps=8))  # trained a little: real weights and stats
    other = library.add(tiny_model_file("pad", seed=1))
    doomed = library.add(tiny_model_file("scratch", seed=2))
    port = free_port()
    log = open(root / "ui.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "distill.cli", "ui", "--port", str(port), "--library", str(root / "library"),
         "--history-dir", str(root / "history"), "--workspace", str(root / "workspace"), "--device", "cpu"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, GRADIO_TEMP_DIR=str(root / "gradio")))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("distill ui did not start:\n" + (root / "ui.log").read_text())
            time.sleep(0.3)
    yield {"url": url, "root": root, "main": main, "other": other, "doomed": doomed, "process": process}
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        if os.environ.get("DISTILL_NO_BROWSER") == "1":
            pytest.skip("DISTILL_NO_BROWSER=1 and no Chromium")
        pytest.fail("Chromium is not installed: `make browser` installs it (or set DISTILL_NO_BROWSER=1 to skip)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, ui):
    context = browser.new_context(viewport={"width": 1300, "height": 1600}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(STEP)
    page.goto(ui["url"])
    page.wait_for_selector("#tab-data", state="attached")
    yield page
    context.close()


# ---------------------------------------------------------------------------------------------------- helpers


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def set_number(page, elem: str, value) -> None:
    """A Number or a Slider's number box: type the value and leave the field (gradio reads it on change)."""
    box = page.locator(f"#{elem} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def choose(page, elem: str, option: str) -> None:
    """Pick ``option`` in the gradio Dropdown ``elem`` (an input with a listbox)."""
    page.locator(f"#{elem} input").click()
    page.get_by_role("option", name=option, exact=False).first.click()


def wait_text(page, elem: str, text: str, timeout: int = STEP) -> str:
    locator = page.locator(f"#{elem}")
    locator.filter(has_text=text).first.wait_for(timeout=timeout)
    return locator.inner_text()


def error_shown(page, text: str) -> str:
    """The message gradio shows in the page for a refused action (a toast), not a traceback."""
    toast = page.locator(".toast-body").filter(has_text=text).first
    toast.wait_for()
    body = toast.inner_text()
    assert "Traceback" not in body and 'File "' not in body
    return body


def fetch(page, elem: str) -> bytes:
    """The file behind the download link of component ``elem``, fetched as the browser would."""
    href = page.locator(f"#{elem} a.download-link").first.get_attribute("href")
    return page.request.get(href).body()


def browser_duration(page, elem: str) -> float:
    """How long the browser itself says the component's audio file is (it decodes its header)."""
    href = page.locator(f"#{elem} a.download-link").first.get_attribute("href")
    return page.evaluate("""href => new Promise((ok, fail) => {
        const a = new Audio(); a.preload = 'metadata';
        a.onloadedmetadata = () => ok(a.duration); a.onerror = () => fail('not playable: ' + href); a.src = href; })""",
                         href)


def open_generate(page, model: str = "drone") -> None:
    """The Generate tab with ``model`` picked (the newest model is picked by default)."""
    tab(page, "Generate")
    page.locator("#gen-slider-0").wait_for(state="visible")
    choose(page, "gen-model", model)
    page.locator("#gen-slider-0").filter(has_text="brightness").wait_for()
    page.wait_for_timeout(300)  # the sliders are reset to 0 on the model's change event


def generate(page, seed: int, duration: float) -> str:
    set_number(page, "gen-duration", duration)
    set_number(page, "gen-seed", seed)
    page.click("#gen-go")
    return wait_text(page, "gen-summary", f"seed {seed}, {duration:g} s")


# ---------------------------------------------------------------------------------------------------- Generate


def test_slider_generate_and_playable_take(page, ui):
    open_generate(page)
    slider = page.locator("#gen-slider-0")
    assert "brightness" in slider.inner_text() and "% of the variation" in slider.inner_text()
    assert "unlabelled" in page.locator("#gen-slider-1").inner_text()  # "Axis 2" is shown as such
    set_number(page, "gen-slider-0", 4)
    summary = generate(page, seed=11, duration=1.5)
    assert "brightness +4" in summary and "drone" in summary
    audio, rate = sf.read(io.BytesIO(fetch(page, "gen-audio")))
    assert audio.shape[0] / rate == pytest.approx(1.5, abs=1e-3) and np.abs(audio).max() > 0
    assert browser_duration(page, "gen-audio") == pytest.approx(1.5, abs=0.01)
    page.locator("#gen-image img").wait_for()
    entry = History.open(ui["root"] / "history").list(limit=1)[0]
    assert entry.source == "ui" and entry.parameters["seed"] == 11
    assert entry.parameters["sliders"]["brightness"] == 4.0
    shot(page, "generate")


def test_randomise_and_new_seed_each_time(page):
    open_generate(page)
    before = page.locator("#gen-seed input").input_value()
    page.click("#gen-dice")
    page.wait_for_function(f"document.querySelector('#gen-seed input').value !== '{before}'")
    page.locator("#gen-fresh-seed input").check()
    set_number(page, "gen-duration", 0.5)
    page.click("#gen-go")
    wait_text(page, "gen-summary", "0.5 s")
    used = page.locator("#gen-seed input").input_value()  # the seed box shows the seed that was drawn
    assert f"seed {used}," in page.locator("#gen-summary").inner_text()


def test_export_flac_24_bit_with_tags(page, tmp_path):
    open_generate(page)
    generate(page, seed=12, duration=1.0)
    choose(page, "gen-format", "flac")
    choose(page, "gen-rate", "44100")
    choose(page, "gen-bits", "24")
    page.fill("#gen-title textarea, #gen-title input", "Night drone")
    page.fill("#gen-artist textarea, #gen-artist input", "distill tests")
    page.click("#gen-export-go")
    link = page.locator("#gen-export-file a.download-link").first
    link.wait_for()
    with page.expect_download() as download:
        link.click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name == "drone-seed12.flac"
    info = sf.info(path)
    assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_24", 44100)
    assert info.duration == pytest.approx(1.0, abs=1e-3)
    with sf.SoundFile(path) as f:
        assert f.title == "Night drone" and f.artist == "distill tests"
        assert "seed 12" in f.comment


def test_export_choices_follow_the_format_and_refusals_are_messages(page):
    tab(page, "Generate")
    page.click("#gen-export-go")  # nothing generated yet in this page
    assert "generate a take first" in error_shown(page, "generate a take first")
    choose(page, "gen-rate", "96000")
    choose(page, "gen-format", "mp3")  # MP3 stops at 48 kHz and has no bit depth
    page.wait_for_function("document.querySelector('#gen-rate input').value === '48000'")
    page.locator("#gen-rate input").click()
    assert "96000" not in page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    assert page.locator("#gen-bits input").is_disabled()


def test_spatial_and_blend_apply_to_the_take(page, ui):
    open_generate(page)
    page.locator("#gen-space").click()
    page.locator("#gen-spatial").get_by_label("binaural").check()
    set_number(page, "gen-azimuth", 60)
    set_number(page, "gen-depth", 0.3)
    page.locator("#gen-use-loudness input").check()
    set_number(page, "gen-loudness", -20)
    page.locator("#gen-blend").click()
    choose(page, "gen-blend-model-0", "pad")
    set_number(page, "gen-blend-weight-0", 0.4)
    summary = generate(page, seed=14, duration=1.0)
    assert "2 channel(s)" in summary and "blend with pad 0.4" in summary and "-20.0 LUFS" in summary
    audio, _ = sf.read(io.BytesIO(fetch(page, "gen-audio")))
    assert audio.ndim == 2 and audio.shape[1] == 2
    params = History.open(ui["root"] / "history").list(limit=1)[0].parameters
    assert params["spatial"]["mode"] == "binaural" and params["spatial"]["azimuth"] == 60
    assert params["loudness"]["target_lufs"] == -20 and params["blend"]["models"][1]["weight"] == 0.4


def test_preset_save_reload_load_delete(page, ui):
    open_generate(page)
    set_number(page, "gen-slider-0", -3)
    set_number(page, "gen-seed", 77)
    set_number(page, "gen-duration", 2.5)
    page.fill("#gen-preset-name input, #gen-preset-name textarea", "dark")
    page.click("#gen-preset-save")
    wait_text(page, "gen-preset-note", "saved preset 'dark'")
    stored = PresetBook.open(str(ui["root"] / "library")).get({"name": "drone", "id": ui["main"].id}, "dark")
    assert stored.settings["sliders"]["brightness"] == -3 and stored.settings["seed"] == 77

    page.reload()  # a fresh page: everything back at its defaults
    open_generate(page)
    assert page.locator("#gen-slider-0 input[type=number]").input_value() == "0"
    choose(page, "gen-preset-pick", "dark")
    page.click("#gen-preset-load")
    wait_text(page, "gen-preset-note", "loaded preset 'dark'")
    assert float(page.locator("#gen-slider-0 input[type=number]").input_value()) == -3
    assert page.locator("#gen-seed input").input_value() == "77"
    assert float(page.locator("#gen-duration input").input_value()) == 2.5
    shot(page, "generate-presets")
    page.click("#gen-preset-delete")
    wait_text(page, "gen-preset-note", "deleted preset 'dark'")
    assert "dark" not in [p.name for p in PresetBook.open(str(ui["root"] / "library")).list()]


def test_history_ab_and_keep_as_preset(page, ui):
    open_generate(page)
    generate(page, seed=21, duration=0.5)
    generate(page, seed=22, duration=0.7)
    comparison = wait_text(page, "gen-compare", "seed")
    assert "21" in comparison and "22" in comparison and "loudness_lufs" in comparison
    for elem, seconds in (("gen-audio-a", 0.5), ("gen-audio-b", 0.7)):
        assert browser_duration(page, elem) == pytest.approx(seconds, abs=0.01)
    page.fill("#gen-keep-name input, #gen-keep-name textarea", "first of two")
    page.click("#gen-keep")
    wait_text(page, "gen-keep-note", "as preset 'first of two'")
    kept = PresetBook.open(str(ui["root"] / "library")).get({"name": "drone", "id": ui["main"].id}, "first of two")
    assert kept.settings["seed"] == 21 and kept.settings["duration"] == 0.5


# ---------------------------------------------------------------------------------------------------- Library


def test_library_search_details_rename_delete_import_export(page, ui, tmp_path):
    tab(page, "Library")
    page.locator("#lib-table").filter(has_text="scratch").wait_for()
    page.fill("#lib-search input, #lib-search textarea", "pad")
    page.click("#lib-search-go")
    page.wait_for_function("!document.querySelector('#lib-table').innerText.includes('scratch')")
    assert "pad" in page.locator("#lib-table").inner_text()

    choose(page, "lib-model", "drone")
    details = wait_text(page, "lib-details", "Sliders")
    assert "brightness" in details and "explained variance" in details and "latent" in details
    shot(page, "library")

    with page.expect_download() as download:
        page.click("#lib-export")
        page.locator("#lib-exported a.download-link").first.click()
    exported = tmp_path / download.value.suggested_filename
    download.value.save_as(exported)
    assert exported.suffix == ".distill"

    choose(page, "lib-model", "scratch")
    page.fill("#lib-new-name input, #lib-new-name textarea", "keeper")
    page.click("#lib-rename")
    wait_text(page, "lib-note", "renamed 'scratch' to 'keeper'")
    assert Library.open(ui["root"] / "library").resolve(ui["doomed"].id).name == "keeper"

    choose(page, "lib-model", "keeper")
    page.click("#lib-delete")
    error_shown(page, "tick the confirmation box")
    assert Library.open(ui["root"] / "library").resolve(ui["doomed"].id)  # still there
    page.locator("#lib-confirm input").check()
    page.click("#lib-delete")
    wait_text(page, "lib-note", "deleted keeper")
    assert ui["doomed"].id not in [e.id for e in Library.open(ui["root"] / "library").entries()]

    page.locator("#lib-import input[type=file]").set_input_files(str(exported))
    wait_text(page, "lib-note", "imported drone")
    assert sum(e.name == "drone" for e in Library.open(ui["root"] / "library").entries()) == 2


# ---------------------------------------------------------------------------------------------------- Data + Train


def test_data_upload_shows_bad_file_reason(page, ui, example_dir, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"this is not audio at all" * 10)
    good = sorted(Path(example_dir).glob("*.wav"))[:2]
    tab(page, "Data")
    page.locator("#data-upload input[type=file]").set_input_files([str(bad), *map(str, good)])
    summary = wait_text(page, "data-summary", "skipped")
    assert "2 usable" in summary and "1 skipped" in summary and "broken.wav" in summary
    table = page.locator("#data-table").inner_text()
    assert "broken.wav" in table and "skipped" in table
    assert page.locator("#data-thumbs img").count() == 2
    assert "stale" in page.locator("#data-cache").inner_text()
    folder = page.locator("#data-folder input, #data-folder textarea").first.input_value()
    assert Path(folder).parent == ui["root"] / "workspace" / "uploads"
    assert sorted(p.name for p in Path(folder).iterdir()) == sorted(["broken.wav", *(p.name for p in good)])
    shot(page, "data")


def test_data_upload_a_whole_folder(page, example_dir):
    tab(page, "Data")
    # gradio puts an UploadButton's (webkitdirectory) file input beside the button, not inside it
    page.locator('input[data-testid="Upload a folder-upload-button"]').set_input_files(str(example_dir))
    wait_text(page, "data-summary", "10 usable")
    folder = page.locator("#data-folder input, #data-folder textarea").first.input_value()
    assert len(list(Path(folder).iterdir())) == 10  # only the audio files, not the folder's .distill cache


def test_missing_folder_is_a_message(page):
    tab(page, "Data")
    page.fill("#data-folder input, #data-folder textarea", "/no/such/folder")
    page.click("#data-scan")
    assert "/no/such/folder" in error_shown(page, "/no/such/folder")


def test_prepare_then_train_in_background_cancel_resume(browser, page, ui, example_dir):
    """Prepare from the Data tab; train from the Train tab; a second tab shows the same run and cannot
    start another; cancel keeps the run, resume finishes it; the model lands in the library."""
    data = ui["root"] / "sounds"
    data.mkdir()
    for name in ("kick.wav", "snare.wav", "pluck_e4.wav"):  # few files: the flow, not the training, is tested
        shutil.copy(Path(example_dir) / name, data / name)
    tab(page, "Data")
    page.fill("#data-folder input, #data-folder textarea", str(data))
    page.click("#data-scan")
    wait_text(page, "data-summary", "3 usable")
    set_number(page, "data-expansion", 1)
    page.click("#data-prepare")
    wait_text(page, "data-job", "Prepare finished", timeout=180_000)
    page.click("#data-scan")
    wait_text(page, "data-cache", "fresh")

    tab(page, "Train")
    assert page.locator("#train-folder input, #train-folder textarea").first.input_value() == str(data)
    choose(page, "train-preset", "tiny")
    set_number(page, "train-epochs", 30)
    page.fill("#train-name input, #train-name textarea", "ui-run")
    page.click("#train-start")
    wait_text(page, "train-status", "Train running")
    wait_text(page, "train-progress", "epoch 1/30", timeout=240_000)

    second = browser.new_page()  # another tab: the same run, and no second one
    second.set_default_timeout(STEP)
    second.goto(ui["url"])
    tab(second, "Train")
    wait_text(second, "train-status", "run ui-run")
    # the form shows the running run's settings, not the defaults
    assert second.locator("#train-name input, #train-name textarea").first.input_value() == "ui-run"
    assert second.locator("#train-preset input").input_value() == "tiny"
    assert second.locator("#train-epochs input").input_value() == "30"
    second.click("#train-start")
    error_shown(second, "a train job is running")
    second.close()

    page.click("#train-cancel")
    wait_text(page, "train-status", "Train cancelled", timeout=120_000)
    set_number(page, "train-epochs", 2)  # resume with a shorter limit: one more epoch
    page.click("#train-resume")
    wait_text(page, "train-status", "Train running")
    wait_text(page, "train-status", "Train finished", timeout=300_000)
    report = wait_text(page, "train-report", "MR-STFT")
    assert "representation alone" in report
    page.locator("#train-preview-0").wait_for(state="visible")
    page.locator("#train-chart img").wait_for()  # the run's loss curve
    shot(page, "train")
    models = [e.name for e in Library.open(ui["root"] / "library").entries()]
    assert "ui-run" in models
