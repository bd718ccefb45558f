"""User settings: flag > environment > settings file > default, and clear errors for a bad file."""

from pathlib import Path

import platformdirs
import pytest

from distill.settings import SettingsError, check_device, load_settings, settings_path


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real settings file, no inherited variables."""
    for name in ("DISTILL_LIBRARY", "DISTILL_HISTORY", "DISTILL_DEVICE", "DISTILL_HISTORY_MAX_ENTRIES",
                 "DISTILL_HISTORY_MAX_MB"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config" / "settings.toml"
    monkeypatch.setenv("DISTILL_SETTINGS", str(path))
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_a_file(isolated):
    assert settings_path() == isolated and not isolated.exists()
    s = load_settings()
    data = Path(platformdirs.user_data_dir("distill"))
    assert s.library == str(data / "models") and s.history == str(data / "history") and s.device == "auto"
    assert (s.history_max_entries, s.history_max_mb) == (200, 2000.0)


def test_settings_path_default_is_the_user_config_dir(monkeypatch):
    monkeypatch.delenv("DISTILL_SETTINGS")
    assert settings_path() == Path(platformdirs.user_config_dir("distill")) / "settings.toml"


def test_precedence_flag_over_env_over_file_over_default(isolated, tmp_path, monkeypatch):
    _write(isolated, 'library = "/file/models"\nhistory = "/file/history"\ndevice = "cpu"\n')
    s = load_settings()
    assert (s.library, s.history, s.device) == ("/file/models", "/file/history", "cpu")
    monkeypatch.setenv("DISTILL_LIBRARY", "/env/models")
    monkeypatch.setenv("DISTILL_DEVICE", "cuda:1")
    s = load_settings()
    assert (s.library, s.history, s.device) == ("/env/models", "/file/history", "cuda:1")
    s = load_settings(library="/flag/models", history="s3://bucket/history", device="mps")
    assert (s.library, s.history, s.device) == ("/flag/models", "s3://bucket/history", "mps")
    monkeypatch.setenv("DISTILL_HISTORY", "")  # an empty variable is no override
    assert load_settings().history == "/file/history"


def test_paths_expand_home_keep_uris_and_resolve_relative_to_the_file(isolated, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _write(isolated, 'library = "~/models"\nhistory = "hist"\n')
    s = load_settings()
    assert s.library == str(tmp_path / "home" / "models")
    assert s.history == str(isolated.parent / "hist")
    assert load_settings(library="s3://bucket/prefix/models").library == "s3://bucket/prefix/models"


@pytest.mark.parametrize(("text", "needle"), [
    ("library = [unclosed", "not valid TOML"),
    ('libary = "/x"\n', "'libary'"),
    ("library = 3\n", "library must be a non-empty string"),
    ('device = "gpu"\n', "device"),
    ('[library]\npath = "/x"\n', "library must be a non-empty string"),
    ("history_max_entries = 0\n", "history_max_entries must be a whole number ≥ 1, got 0"),
    ("history_max_entries = 2.5\n", "history_max_entries must be a whole number ≥ 1"),
    ('history_max_entries = "10"\n', "history_max_entries must be a whole number ≥ 1, got '10'"),
    ("history_max_entries = true\n", "history_max_entries must be a whole number ≥ 1"),
    ("history_max_mb = -1\n", "history_max_mb must be a number of megabytes > 0, got -1"),
    ("history_max_mb = 0.0\n", "history_max_mb must be a number of megabytes > 0"),
    ("history_max_mb = inf\n", "history_max_mb must be a number of megabytes > 0"),
    ("history_max_megabytes = 5\n", "'history_max_megabytes'"),
])
def test_a_bad_file_names_the_file_and_the_key(isolated, text, needle):
    _write(isolated, text)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(isolated) in str(info.value) and needle in str(info.value)


def test_bad_device_from_env_or_flag_names_its_source(monkeypatch):
    monkeypatch.setenv("DISTILL_DEVICE", "tpu")
    with pytest.raises(SettingsError, match="DISTILL_DEVICE"):
        load_settings()
    monkeypatch.delenv("DISTILL_DEVICE")
    with pytest.raises(SettingsError, match="--device"):
        load_settings(device="cuda:x")
    assert check_device(" CUDA:0 ", "x") == "cuda:0"


def test_history_bounds_from_file_then_environment(isolated, monkeypatch):
    _write(isolated, 'history_max_entries = 50\nhistory_max_mb = 12.5\n')
    s = load_settings()
    assert (s.history_max_entries, s.history_max_mb) == (50, 12.5)
    monkeypatch.setenv("DISTILL_HISTORY_MAX_ENTRIES", " 3 ")
    monkeypatch.setenv("DISTILL_HISTORY_MAX_MB", "0.5")
    s = load_settings(history="/flag/history")  # the location flag leaves the bounds alone
    assert (s.history, s.history_max_entries, s.history_max_mb) == ("/flag/history", 3, 0.5)
    monkeypatch.setenv("DISTILL_HISTORY_MAX_MB", "")  # an empty variable is no override
    assert load_settings().history_max_mb == 12.5
    _write(isolated, "history_max_mb = 700\n")  # a whole number of megabytes is fine too
    assert load_settings().history_max_mb == 700.0 and isinstance(load_settings().history_max_mb, float)


@pytest.mark.parametrize(("variable", "value"), [("DISTILL_HISTORY_MAX_ENTRIES", "many"),
                                                 ("DISTILL_HISTORY_MAX_ENTRIES", "1.5"),
                                                 ("DISTILL_HISTORY_MAX_ENTRIES", "-2"),
                                                 ("DISTILL_HISTORY_MAX_MB", "0"), ("DISTILL_HISTORY_MAX_MB", "nan")])
def test_bad_history_bounds_in_the_environment_name_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    key = variable.removeprefix("DISTILL_").lower()
    with pytest.raises(SettingsError, match=f"^environment variable {variable}: {key} must be"):
        load_settings()
