"""cluster.yaml, checked the way `ray up` checks it (the installed Ray's own schema), plus what this project
needs from it: GPU workers that scale from zero, a head without GPU work, the project installed on every
node, token authentication, and an upload without the venv or the user's data. No network, no AWS."""

from __future__ import annotations

import copy
from fnmatch import fnmatch
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def _prepared(config):
    """What `ray up` validates (commands._bootstrap_config): prepare_config merges the AWS provider's
    defaults.yaml in first. validate_config on the raw file fails with a misleading "cluster runs a newer
    Ray" RuntimeError, because it insists on `cluster_synced_files`, a key only the defaults supply. The
    merge is shallow (any top-level key we leave out takes the AWS default, e.g. its nightly-wheel
    setup_commands) and it returns a copy, leaving `config` alone. Between the two steps `ray up` also
    asks EC2 for the instance types' CPUs/GPUs; that needs AWS, so it is the one part skipped here."""
    return prepare_config(copy.deepcopy(config))


def test_ray_accepts_the_cluster_config(raw):
    """The installed Ray's launcher validation (jsonschema against ray/autoscaler/ray-schema.json, then
    head type and worker-count checks) passes, so `ray up` will not refuse the file."""
    validate_config(_prepared(raw))


def _typo_top_level(c):
    c["max_worker"] = 4


def _string_max_workers(c):
    c["max_workers"] = "4"


def _fractional_gpu(c):
    c["available_node_types"]["ray.worker.gpu"]["resources"] = {"GPU": 0.5}


def _unknown_head_type(c):
    c["head_node_type"] = "ray.head.gpu"


@pytest.mark.parametrize("breakage", [_typo_top_level, _string_max_workers, _fractional_gpu, _unknown_head_type])
def test_the_same_validation_rejects_broken_copies(raw, breakage):
    """Proof the check above bites: the same function refuses an unknown top-level key (the schema allows
    no extra keys there), a wrong type, a fractional resource (node resources must be integers) and a head
    type that is not defined. Note the schema does not look inside `provider` (extra keys allowed, so a
    misspelt `cache_stopped_nodes` would pass) nor inside `node_config` (EC2 fields are unchecked)."""
    broken = copy.deepcopy(raw)
    breakage(broken)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        validate_config(_prepared(broken))


def test_head_runs_no_gpu_work_and_gpu_workers_scale_from_zero(raw):
    """Training asks for GPUs, so it lands on the worker type only; with min_workers 0 an idle cluster
    costs one CPU node, and the autoscaler knows each worker brings a GPU before launching one."""
    types = raw["available_node_types"]
    head = types[raw["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    workers = [t for name, t in types.items() if name != raw["head_node_type"]]
    gpu = [t for t in workers if t["resources"].get("GPU", 0) >= 1]
    assert gpu, "no worker node type declares a GPU"
    for t in gpu:
        assert t["min_workers"] == 0 < t["max_workers"] <= raw["max_workers"]


def test_setup_installs_torch_then_the_project_on_every_node(raw):
    """Jobs import distill on every node: setup_commands (run on head and workers alike) install torch and
    then the mounted project, whose pyproject brings Ray; the head also gets boto3 for the autoscaler."""
    assert raw["file_mounts"]["~/distill"] == "."
    commands = raw["setup_commands"]
    project = [i for i, c in enumerate(commands) if "pip install" in c and "~/distill" in c]
    torch = [i for i, c in enumerate(commands) if "pip install" in c and "torch" in c]
    assert project and torch and torch[0] < project[0]
    prepared = _prepared(raw)  # merges setup_commands into the head's and workers' lists
    assert commands[project[0]] in prepared["worker_setup_commands"]
    assert any("boto3" in c for c in prepared["head_setup_commands"])


@pytest.mark.parametrize("key", ["head_start_ray_commands", "worker_start_ray_commands"])
def test_ray_starts_with_token_auth(raw, key):
    """Ray 2.60 turns token authentication on by default only for local clusters, so each `ray start` sets
    RAY_AUTH_MODE=token itself; `ray start` then refuses to run without a token, so it is mounted too."""
    starts = [c for c in raw[key] if "ray start" in c]
    assert starts and all("RAY_AUTH_MODE=token" in c.split("ray start")[0] for c in starts)
    assert raw["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def _excluded(name, patterns):
    """rsync --exclude for a top-level entry: a leading / anchors to the root, a trailing / means a folder."""
    return any(fnmatch(name, p.strip("/")) for p in patterns)


def test_upload_leaves_out_the_venv_data_and_caches(raw):
    """`ray up` rsyncs "." to every node: the local venv (GBs, built for the laptop), the user's sounds,
    outputs, model files and prepared caches must stay behind; the package and its pyproject must not."""
    patterns = raw["rsync_exclude"]
    for name in [".venv", "data", "out", "drums.distill", ".distill", ".git"]:
        assert _excluded(name, patterns), name
    for name in ["distill", "pyproject.toml", "README.md", "jobs", "serve"]:
        assert (ROOT / name).exists() and not _excluded(name, patterns), name
