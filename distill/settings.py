"""The user's settings: where the model library and the history live, and the default device.

A small TOML file, all keys optional::

    library = "~/sounds/models"        # folder or URI (s3://bucket/prefix) of the model library
    history = "~/sounds/history"       # folder or URI of the generation history
    device = "auto"                    # auto | cpu | cuda | cuda:N | mps
    history_max_entries = 200          # the history keeps at most this many takes (oldest go first) …
    history_max_mb = 2000              # … and at most this many megabytes (10⁶ bytes) of them

Where it is: ``$DISTILL_SETTINGS`` when set, else ``<user config dir>/distill/settings.toml``
(platformdirs); a missing file means the defaults. Each value can be overridden by an environment
variable (``DISTILL_LIBRARY``, ``DISTILL_HISTORY``, ``DISTILL_DEVICE``, ``DISTILL_HISTORY_MAX_ENTRIES``,
``DISTILL_HISTORY_MAX_MB``), and the first three by explicit arguments (the command-line flags):
flag > environment > file > default. The history bounds have no flag here; :meth:`distill.history.History.open`
takes them as arguments.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

APP = "distill"
SETTINGS_ENV = "DISTILL_SETTINGS"
ENV = {"library": "DISTILL_LIBRARY", "history": "DISTILL_HISTORY", "device": "DISTILL_DEVICE"}
NUMBER_ENV = {"history_max_entries": "DISTILL_HISTORY_MAX_ENTRIES", "history_max_mb": "DISTILL_HISTORY_MAX_MB"}
KEYS = (*ENV, *NUMBER_ENV)
DEFAULT_HISTORY_MAX_ENTRIES = 200
DEFAULT_HISTORY_MAX_MB = 2000.0  # megabytes of 10⁶ bytes
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


class SettingsError(ValueError):
    """A settings file or value that cannot be used; the message names the file (or variable) and the key."""


@dataclass(frozen=True)
class Settings:
    library: str  # folder or URI of the model library
    history: str  # folder or URI of the generation history
    device: str  # "auto", "cpu", "cuda", "cuda:N" or "mps"
    history_max_entries: int = DEFAULT_HISTORY_MAX_ENTRIES  # ≥ 1: takes kept in the history
    history_max_mb: float = DEFAULT_HISTORY_MAX_MB  # > 0: megabytes (10⁶ bytes) the history may hold


def settings_path() -> Path:
    """Where the settings file is (it need not exist)."""
    override = os.environ.get(SETTINGS_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP)) / "settings.toml"


def default_settings() -> Settings:
    """The settings without a file, variables or flags."""
    data = Path(platformdirs.user_data_dir(APP))
    return Settings(library=str(data / "models"), history=str(data / "history"), device="auto")


def check_device(value: str, source: str) -> str:
    """``value`` if it names a device kind distill knows; :class:`SettingsError` naming ``source`` otherwise."""
    if not isinstance(value, str) or not _DEVICE.match(value.strip().lower()):
        raise SettingsError(f"{source}: device must be one of {', '.join(DEVICES)}, got {value!r}")
    return value.strip().lower()


def check_history_bound(key: str, value, source: str) -> int | float:
    """``value`` as a valid ``history_max_entries`` (whole number ≥ 1) or ``history_max_mb`` (number > 0);
    :class:`SettingsError` naming ``source`` and the key otherwise. A number must be a number: text is refused."""
    if key == "history_max_entries":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SettingsError(f"{source}: {key} must be a whole number ≥ 1, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{source}: {key} must be a number of megabytes > 0, got {value!r}")
    return float(value)


def _parse_bound(key: str, text: str, source: str) -> int | float:
    """An environment variable's text → :func:`check_history_bound`."""
    try:
        value = int(text) if key == "history_max_entries" else float(text)
    except ValueError:
        value = text  # refused below, quoted as given
    return check_history_bound(key, value, source)


def _location(value: str, base: Path | None = None) -> str:
    """A folder or URI as given: ``~`` expanded, a relative path taken relative to ``base`` (when given)."""
    if "://" in value:
        return value
    path = Path(value).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path  # relative to the settings file, not to wherever the command runs
    return str(path)


def read_settings_file(path: Path) -> dict:
    """The values set in the settings file at ``path`` (``{}`` when it does not exist), checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read the settings file ({getattr(exc, 'strerror', None) or exc})"
                            ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise SettingsError(f"{path}: unknown setting {unknown[0]!r}; known: {', '.join(KEYS)}")
    values = {}
    for key, value in data.items():
        if key in NUMBER_ENV:
            values[key] = check_history_bound(key, value, str(path))
            continue
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"{path}: {key} must be a non-empty string, got {value!r}")
        if key == "device":
            values[key] = check_device(value, f"{path}: key 'device'")
        else:
            values[key] = _location(value, path.parent)
    return values


def load_settings(library: str | None = None, history: str | None = None, device: str | None = None) -> Settings:
    """The effective settings: each argument given (a flag) beats its environment variable, which beats
    the settings file, which beats the default."""
    values = asdict(default_settings()) | read_settings_file(settings_path())
    for key, variable in ENV.items():
        value = os.environ.get(variable, "").strip()
        if value:
            values[key] = check_device(value, f"environment variable {variable}") if key == "device" \
                else _location(value)
    for key, variable in NUMBER_ENV.items():
        value = os.environ.get(variable, "").strip()
        if value:
            values[key] = _parse_bound(key, value, f"environment variable {variable}")
    for key, value in {"library": library, "history": history, "device": device}.items():
        if value is not None:
            if not str(value).strip():
                raise SettingsError(f"--{key}: must not be empty")
            values[key] = check_device(value, f"--{key}") if key == "device" else _location(str(value))
    return Settings(**values)
