"""The jobs in jobs/ on a real Ray cluster, submitted with the real ``ray job submit`` CLI.

What this proves, with real processes (a ``ray start --head`` of its own, three ``ray job submit``):

- ``jobs/prepare.py``, ``jobs/train.py`` and ``jobs/sweep.py --smoke-test`` succeed as Ray jobs, one
  after the other on the same data: the prepared cache (manifest), the training run (report and model
  file), the model in the library, the sweep folder (two trials in results.csv, the plot, the best
  config) and the sweep's best model in the library are where the CLI documents them.
- Each job's entrypoint joined the cluster it was submitted to (Ray records a driver for the
  submission only when the entrypoint's ``ray.init`` connects to that cluster) instead of starting
  a Ray of its own.
- ``jobs/runtime_env.yaml`` works with ``--working-dir .``: the unpacked working dir on the cluster has
  the code but not the virtualenv, the data or the caches, and Ray's own matcher excludes every
  pattern the file promises (checked on a synthetic tree, so it holds on a fresh clone too).

The head runs with loopback addresses only, a temporary directory and a token of its own, and is
stopped by signalling its own ``ray start --block`` process: never ``ray stop``, which stops every
Ray on the machine (the test session's embedded one and other people's included).
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_ENV = ROOT / "jobs" / "runtime_env.yaml"
# The bin folder of the interpreter running the tests (the project's .venv): first on the head's PATH,
# so the `python` of a job's entrypoint is this one, with distill and Ray installed.
VENV_BIN = Path(sys.executable).parent
RAY = shutil.which("ray", path=str(VENV_BIN)) or shutil.which("ray")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(RAY is None, reason="the ray CLI is not installed")]

HEAD_START_TIMEOUT = 90
JOB_TIMEOUT = 420  # per job; on 2 CPUs the longest, the sweep, takes about 1.5 minutes


def _free_ports(count: int) -> list[int]:
    # All sockets open at once, so the ports differ from each other.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Head:
    """A running head: its addresses, the environment that reaches it, and its temp dir."""

    def __init__(self, process: subprocess.Popen, dashboard_url: str, env: dict[str, str], temp_dir: Path,
                 log: Path):
        self.process, self.dashboard_url, self.env, self.temp_dir, self.log = process, dashboard_url, env, temp_dir, log

    def get(self, path: str):
        """GET on the dashboard's REST API (the Jobs API), with the cluster's token."""
        request = urllib.request.Request(self.dashboard_url + path,
                                         headers={"Authorization": f"Bearer {self.env['RAY_AUTH_TOKEN']}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def session_dir(self) -> Path:
        return self.temp_dir / "session_latest"


def _head_env() -> dict[str, str]:
    # No RAY_* from outside (a RAY_ADDRESS of CI, or the RAY_AUTH_MODE that an embedded ray.init in
    # this pytest process sets): the head, the CLI and the jobs see only what is set here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    # Token authentication (Ray 2.60 turns it on for `ray start --head` only when a token already
    # exists: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, which every Ray of this user
    # on the machine shares). We turn it on explicitly with a token of our own, given in
    # RAY_AUTH_TOKEN, which Ray reads before any token file: `ray job submit` sends it as a bearer
    # token (without it the dashboard answers 401), the raylet passes it to the job's entrypoint,
    # whose ray.init needs it to join, and ~/.ray/auth_token is neither read nor written.
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
    # Ray replaces --node-ip-address 127.0.0.1 with the machine's routable address (it assumes a
    # multi-node cluster); its single-node mode (the default on macOS and Windows) keeps loopback.
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    # On SIGTERM `ray start --block` first drains the node, for up to 30 s, waiting for every worker
    # lease to be returned; a test head has nothing to drain, so it stops at once.
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    return env


def _stop_head(process: subprocess.Popen, temp_dir: Path) -> list[str]:
    """Stop one head and everything it started; return the command lines of any process left over.

    `ray stop` cannot target one cluster (it terminates every Ray process of the machine by name).
    SIGTERM to the head's own `ray start --block` process makes it stop its node's processes (GCS,
    raylet, dashboard, agents; the raylet's workers die with it). Anything of the head still alive
    after that (found in the process tree taken before the signal, and by the temp dir in its command
    line: every node process names its session dir) is killed.
    """
    import ray  # noqa: F401  (its import puts the psutil that Ray bundles on sys.path)

    psutil = importlib.import_module("psutil")

    def ours() -> list:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid != os.getpid() and str(temp_dir) in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        return found

    try:
        head = psutil.Process(process.pid)
        tree = [head, *head.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=30)
    alive += [proc for proc in ours() if proc not in alive]
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    try:  # the session of `ray start` (start_new_session): nothing in it should be left either
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(timeout=10)
    left = []
    for proc in [*tree, *ours()]:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(" ".join(proc.cmdline())[:200])
        except psutil.NoSuchProcess:
            pass
    return left


@pytest.fixture(scope="module")
def head():
    # A short temp dir of our own (Ray's socket paths must stay under ~107 characters, which pytest's
    # tmp_path can exceed): the head's sessions, logs and the unpacked working dirs live there.
    temp_dir = Path(tempfile.mkdtemp(prefix="distill-ray-"))
    # Every port the head listens on with a fixed default gets a free one: a second Ray on the machine
    # (another test run) holds the defaults, and e.g. a dashboard agent that cannot bind 52365 leaves
    # the Jobs API without an agent ("No available agent to submit job").
    gcs, dashboard, agent, client = _free_ports(4)
    env = _head_env()
    log = temp_dir / "head.log"
    cmd = [RAY, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
           "--include-dashboard=true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
           "--dashboard-agent-listen-port", str(agent), "--ray-client-server-port", str(client),
           "--num-cpus", "2", "--disable-usage-stats", "--temp-dir", str(temp_dir)]
    with open(log, "wb") as out:
        # --block keeps `ray start` in the foreground as the parent of the node's processes, in a
        # session of its own (start_new_session), so that _stop_head can stop exactly this head.
        process = subprocess.Popen(cmd, env=env, cwd=temp_dir, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        running = Head(process, f"http://127.0.0.1:{dashboard}", env, temp_dir, log)
        deadline = time.monotonic() + HEAD_START_TIMEOUT
        while b"Ray runtime started" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head did not start:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.5)
        running.get("/api/version")  # the dashboard answers, and takes our token
        yield running
    finally:
        left = _stop_head(process, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"processes of the test's Ray head are still running: {left}"


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    # Outside the repo and absolute: the job runs in an uploaded copy of the working dir, with its
    # own cwd, so DIR must name the same folder there (one machine here; shared storage on a cluster).
    return tmp_path_factory.mktemp("cluster") / "sounds"


@pytest.fixture(scope="module")
def library(sounds):
    return sounds.parent / "library"


def _submit(head: Head, name: str, argv: list[str], log_dir: Path) -> dict:
    """`ray job submit … -- python <argv>` from the repo root; waits for the job, fails with its log."""
    for attempt in (1, 2):
        submission_id = f"{name}-{secrets.token_hex(4)}"
        cmd = [RAY, "job", "submit", "--address", head.dashboard_url, "--submission-id", submission_id,
               "--working-dir", ".", "--runtime-env", str(RUNTIME_ENV.relative_to(ROOT)), "--", "python", *argv]
        started = time.monotonic()
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=head.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=JOB_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            output = (exc.output or b"").decode(errors="replace")
            pytest.fail(f"{name}: no result after {JOB_TIMEOUT} s:\n{output[-6000:]}")
        seconds = time.monotonic() - started
        output = done.stdout.decode(errors="replace")
        (log_dir / f"{name}.log").write_text(output)  # kept with pytest's tmp dirs, for a look afterwards
        # Ray hashes the working dir twice: once for the job's runtime env, once more to name the
        # upload. A file of the checkout saved in between (an editor, while the tests run) gives the
        # job a package that was never uploaded. Once more then; CI checkouts do not change.
        if done.returncode == 0 or "Failed to download runtime_env file package" not in output or attempt == 2:
            break
    # `ray job submit` waits for the job, streams its log and exits 1 when the job failed.
    assert done.returncode == 0, f"{' '.join(argv)} failed (exit {done.returncode}):\n{output[-8000:]}"
    info = head.get(f"/api/jobs/{submission_id}")
    print(f"{name}: {seconds:.1f} s submit to end, {(info['end_time'] - info['start_time']) / 1000:.1f} s on the "
          "cluster")
    return {"id": submission_id, "output": output, "seconds": seconds, "info": info}


@pytest.fixture(scope="module")
def jobs(head, sounds, library):
    """The three jobs, in order: train and sweep reuse the cache that prepare wrote."""
    results = {}
    logs = sounds.parent
    results["prepare"] = _submit(head, "prepare", ["jobs/prepare.py", "--smoke-test", str(sounds)], logs)
    results["prepare"]["manifest"] = (sounds / ".distill" / "cache" / "manifest.json").read_bytes()
    results["train"] = _submit(head, "train", ["jobs/train.py", "--smoke-test", str(sounds), "--epochs", "2",
                                               "--name", "smoke", "--library", str(library)], logs)
    # Both trials at once: on a cluster the request is taken as given (measured 87 s instead of 98 s).
    results["sweep"] = _submit(head, "sweep", ["jobs/sweep.py", "--smoke-test", str(sounds), "--name", "smokesweep",
                                               "--max-concurrent", "2", "--library", str(library)], logs)
    return results


def test_the_head_refuses_requests_without_its_token(head):
    # The jobs below got in with the token (RAY_AUTH_TOKEN): the head really checks it.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(head.dashboard_url + "/api/jobs/", timeout=10)
    assert refused.value.code == 401


def test_the_jobs_succeed_as_drivers_of_the_cluster_they_were_submitted_to(head, jobs):
    from_file = yaml.safe_load(RUNTIME_ENV.read_text())
    for name, job in jobs.items():
        info = job["info"]
        assert info["status"] == "SUCCEEDED", (name, info)
        # Ray links a driver to a submission only when the entrypoint's ray.init connects to this
        # cluster (RAY_ADDRESS from the job); a Ray of its own would leave driver_info empty.
        driver = info["driver_info"]
        assert driver and driver["node_ip_address"] == "127.0.0.1", (name, info, job["output"][-3000:])
        # The job ran with runtime_env.yaml plus the uploaded working dir: --working-dir added its
        # key to the file's, and kept the file's excludes and env_vars.
        runtime_env = info["runtime_env"]
        assert {k: v for k, v in runtime_env.items() if k != "working_dir"} == from_file, runtime_env
        assert runtime_env["working_dir"].startswith("gcs://_ray_pkg_"), runtime_env
    listed = {job["submission_id"]: job["status"] for job in head.get("/api/jobs/")}
    assert {listed[job["id"]] for job in jobs.values()} == {"SUCCEEDED"}, listed


def test_prepare_job_writes_the_cache_that_train_and_sweep_reuse(sounds, jobs):
    written = jobs["prepare"]["manifest"]
    manifest = json.loads(written)
    assert len(manifest["files"]) == 10 and manifest["totals"], manifest  # the ten example files
    # The smoke tests prepare what the tiny preset trains on: train and sweep found the cache up to
    # date (a rebuild rewrites the manifest), and the example data was not rewritten under it.
    assert (sounds / ".distill" / "cache" / "manifest.json").read_bytes() == written
    assert f"preparing {sounds}" in jobs["prepare"]["output"]
    assert f"preparing {sounds}" not in jobs["train"]["output"] + jobs["sweep"]["output"]


def test_train_job_writes_the_run_and_keeps_the_model_in_the_library(sounds, library, jobs):
    run = sounds / ".distill" / "runs" / "smoke"
    report = json.loads((run / "report.json").read_text())
    assert report["stopped"] == "completed" and report["epochs"] == 2, report
    assert (run / "model.distill").stat().st_size > 0


def test_sweep_job_writes_the_sweep_folder(sounds, jobs):
    sweep = sounds / ".distill" / "sweeps" / "smokesweep"
    with open(sweep / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["status"], r["epochs"]) for r in rows] == [("completed", "1")] * 2, rows  # --smoke-test: 2 × 1 epoch
    assert (sweep / "objective.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert tomllib.loads((sweep / "best_config.toml").read_text())


def test_the_library_holds_the_trained_and_the_sweeps_best_model(library, jobs, head):
    done = subprocess.run([sys.executable, "-m", "distill.cli", "model", "list", "--library", str(library), "--json"],
                          cwd=ROOT, env=head.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    epochs = {model["name"]: model["summary"]["epochs"] for model in json.loads(done.stdout)}
    assert epochs == {"smoke": 2, "smokesweep": 1}, epochs


def test_the_uploaded_working_dir_has_the_code_and_no_data(head, jobs):
    packages = {job["info"]["runtime_env"]["working_dir"] for job in jobs.values()}
    for uri in packages:  # one, unless a file of the checkout changed between the submissions
        unpacked = head.session_dir() / "runtime_resources" / "working_dir_files" / Path(uri).stem
        assert (unpacked / "jobs" / "train.py").is_file() and (unpacked / "distill" / "cli.py").is_file(), unpacked
        top = {p.name for p in unpacked.iterdir()}
        print(f"uploaded working dir: {sorted(top)}")
        assert not top & {".git", ".venv", "data", "out", ".pytest_cache", ".hypothesis", ".ruff_cache"}, top
        # (__pycache__ is not checked here: the job itself writes it when it imports the uploaded code.)
        found = [p for p in unpacked.rglob("*") if p.name == ".distill" or p.suffix == ".distill"]
        assert not found, found
        size = sum(p.stat().st_size for p in unpacked.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        assert size < 20 * 2**20, f"{size / 2**20:.1f} MiB uploaded"  # the code is well under 2 MiB


def test_runtime_env_excludes_data_and_caches_with_rays_own_matcher(tmp_path):
    """What Ray zips for `--working-dir`, with this file's excludes, on a tree that has everything."""
    # The function `ray job submit` packs the working dir with (ray.dashboard.modules.dashboard_sdk).
    from ray._private.runtime_env.packaging import create_package

    tree = tmp_path / "checkout"
    kept = ["jobs/train.py", "distill/cli.py", "distill/ray_layer/train.py", "README.md", "jobs/runtime_env.yaml"]
    dropped = [".git/HEAD", ".venv/bin/python", "venv/bin/python", "data/example/kick.wav", "out/demo/x.wav",
               "distill-smoke/kick.wav", ".distill/cache/manifest.json", "data2/.distill/runs/a/report.json",
               "sub/deep/.distill/cache/manifest.json", "model.distill", "out2/best.distill",
               "distill/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v/x", ".hypothesis/examples/x",
               ".ruff_cache/x", "distill.egg-info/PKG-INFO"]
    for rel in kept + dropped:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("x")
    excludes = yaml.safe_load(RUNTIME_ENV.read_text())["excludes"]
    package = tmp_path / "package.zip"
    # include_gitignore=False and without Ray's default excludes (.git, .venv, venv, __pycache__):
    # the file alone keeps them out, whatever .gitignore or a later Ray says.
    create_package(str(tree), package, include_gitignore=False, excludes=excludes)
    names = {n for n in zipfile.ZipFile(package).namelist() if not n.endswith("/")}
    assert names == set(kept), sorted(names ^ set(kept))
