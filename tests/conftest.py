"""Shared fixtures: the project's own example data, written once per session."""

from __future__ import annotations

import pytest

from distill.example_data import write_example_data


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
