#!/usr/bin/env python
"""What the UI adds to a generation: click → playable take in Chromium vs the same call in-process.

    python benchmarks/ui_generate.py [--durations 1,4,10] [--repeats 5] [--preset tiny] [--json]

Writes a temporary library with one random-weight model of ``--preset`` (``serve_load.make_library``:
an untrained model decodes as fast as a trained one), starts ``distill ui`` on it as a subprocess,
and for each take duration measures, side by side in one run:

* ``backend ms``: :meth:`distill.ui_backend.UiBackend.generate` in this process (the take, its
  playback WAV, its spectrogram and its history entry: everything the click does but the browser);
* ``browser ms``: in headless Chromium (Playwright, Debian's ``/usr/bin/chromium``), from the click
  on *Generate* until the page shows the take's summary (the player has its file then);
* ``UI overhead``: browser ÷ backend.

Medians over ``--repeats`` takes (a new seed each), after one warm-up take per duration. ``--json``
prints ``{"config", "results"}`` on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import MODEL_NAME, free_port, make_library  # noqa: E402

from distill.cli_common import answers_only_on_stdout, print_answer  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _start_ui(root: Path, port: int) -> subprocess.Popen:
    log = open(root / "ui.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "distill.cli", "ui", "--port", str(port), "--library",
                                str(root / "library"), "--history-dir", str(root / "history-ui"), "--workspace",
                                str(root / "workspace-ui"), "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            return process
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.3)
    process.kill()
    raise SystemExit("distill ui did not start:\n" + (root / "ui.log").read_text())


def _browser_times(url: str, durations: list[float], repeats: int) -> dict[float, list[float]]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("Chromium is not installed (make browser)")
    out: dict[float, list[float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        page.get_by_role("tab", name="Generate").click()
        page.locator("#gen-slider-note").filter(has_text="sliders").wait_for()  # the model is picked
        seed = 1000
        for duration in durations:
            box = page.locator("#gen-duration input")
            box.fill(f"{duration:g}")
            box.press("Enter")
            times = []
            for i in range(repeats + 1):  # the first is a warm-up
                seed += 1
                page.locator("#gen-seed input").fill(str(seed))
                page.locator("#gen-seed input").press("Enter")
                started = time.perf_counter()
                page.click("#gen-go")
                page.locator("#gen-summary").filter(has_text=f"seed {seed}, {duration:g} s").wait_for()
                if i:
                    times.append(time.perf_counter() - started)
            out[duration] = times
            print(f"browser {duration:g} s: median {1000 * statistics.median(times):.0f} ms", file=sys.stderr)
        browser.close()
    return out


def _backend_times(root: Path, durations: list[float], repeats: int) -> dict[float, list[float]]:
    from distill.ui_backend import UiBackend

    backend = UiBackend(library=str(root / "library"), history=str(root / "history-py"),
                        workspace=root / "workspace-py", device="cpu")
    model = backend.model_choices()[0][1]
    out: dict[float, list[float]] = {}
    seed = 5000
    for duration in durations:
        times = []
        for i in range(repeats + 1):
            seed += 1
            request = backend.request(duration=duration, seed=seed, sliders={}, evolution=0.3)
            started = time.perf_counter()
            backend.generate(model, request)
            if i:
                times.append(time.perf_counter() - started)
        out[duration] = times
        print(f"backend {duration:g} s: median {1000 * statistics.median(times):.0f} ms", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durations", default="1,4,10", help="take lengths in seconds (default 1,4,10)")
    parser.add_argument("--repeats", type=int, default=5, help="takes per duration (default 5)")
    parser.add_argument("--preset", default="tiny", help="model size (default tiny)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    durations = [float(d) for d in args.durations.split(",")]
    root = Path(tempfile.mkdtemp(prefix="distill-ui-bench-"))
    os.environ.setdefault("GRADIO_TEMP_DIR", str(root / "gradio"))
    try:
        make_library(str(root / "library"), args.preset)
        process = _start_ui(root, free_port())
        try:
            port = process.args[process.args.index("--port") + 1]
            browser = _browser_times(f"http://127.0.0.1:{port}/", durations, args.repeats)
        finally:
            process.terminate()
            process.wait(20)
        backend = _backend_times(root, durations, args.repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results = []
    for d in durations:
        b, w = statistics.median(backend[d]), statistics.median(browser[d])
        results.append({"duration": d, "backend_ms": round(1000 * b, 1), "browser_ms": round(1000 * w, 1),
                        "overhead": round(w / b, 2)})
    config = {"durations": durations, "repeats": args.repeats, "preset": args.preset, "model": MODEL_NAME}
    if args.json:
        print_answer({"config": config, "results": results})
        return 0
    print(f"{'take s':>7} {'backend ms':>11} {'browser ms':>11} {'UI overhead':>12}")
    for r in results:
        print(f"{r['duration']:>7g} {r['backend_ms']:>11.0f} {r['browser_ms']:>11.0f} {r['overhead']:>11.2f}×")
    return 0


if __name__ == "__main__":
    with answers_only_on_stdout("--json" in sys.argv):
        code = main()
    sys.exit(code)
