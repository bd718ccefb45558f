"""The core never imports Ray or Gradio (DESIGN §3): checked in a fresh interpreter."""

import pkgutil
import subprocess
import sys

import distill

CORE_MODULES = sorted(f"distill.{m.name}" for m in pkgutil.iter_modules(distill.__path__)
                      if m.name not in {"ray_layer", "ui_app"})


def test_core_imports_load_neither_ray_nor_gradio():
    assert "distill.representation" in CORE_MODULES and "distill.audio_io" in CORE_MODULES
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE_MODULES) +
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'gradio'))\n"
            "print(','.join(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_gradio_is_imported_only_by_the_ui_module():
    from pathlib import Path

    package = Path(distill.__file__).parent
    importers = sorted(p.name for p in package.rglob("*.py") if "import gradio" in p.read_text())
    assert importers == ["ui_app.py"]


def test_griffin_lim_lives_only_in_benchmarks():
    from pathlib import Path

    package = Path(distill.__file__).parent
    for path in package.rglob("*.py"):
        text = path.read_text().lower()
        assert "def griffin" not in text and "import griffin" not in text, path
