"""Shared fixtures: the project's own example data, written once per session."""

from __future__ import annotations

import os

import pytest

from distill.example_data import write_example_data


@pytest.fixture(scope="session", autouse=True)
def private_user_dirs(tmp_path_factory):
    """No test reads or writes the real user's settings, model library or history: the environment
    (inherited by every CLI subprocess and Ray worker started from here) points at a temporary home."""
    home = tmp_path_factory.mktemp("user")
    names = {"DISTILL_SETTINGS": home / "settings.toml", "DISTILL_LIBRARY": home / "models",
             "DISTILL_HISTORY": home / "history"}
    saved = {name: os.environ.get(name) for name in [*names, "DISTILL_DEVICE"]}
    os.environ.update({name: str(path) for name, path in names.items()})
    os.environ.pop("DISTILL_DEVICE", None)
    yield home
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def example_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("example")
    write_example_data(folder)
    return folder


@pytest.fixture(scope="session")
def local_ray():
    """One embedded Ray for every in-process pipeline test (starting one costs seconds)."""
    import ray

    from distill.ray_layer import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()
