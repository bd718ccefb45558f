#!/usr/bin/env python
"""Load on ``distill serve``: throughput and latency of ``POST /v1/generate`` under concurrent clients.

    python benchmarks/serve_load.py [--clients 1,4,16] [--durations 1,10] [--modes batched,unbatched]
                                    [--seconds 20] [--warmup 2] [--max-requests N] [--num-cpus N]
                                    [--preset tiny] [--max-batch-size 16] [--batch-wait-ms 5] [--json]
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 [--model NAME] [...]

By default the script writes a temporary library holding one model of ``--preset`` with random
weights (an untrained model decodes exactly as fast as a trained one, so it serves for speed), and
for each mode starts its own server as a subprocess (``distill serve``, ``--no-batching`` for
``unbatched``), waits for it to say it is serving, runs every load, and stops it with SIGINT. The
server's output goes to ``server-MODE.log`` in the temporary folder (kept if a server fails to
start). With ``--url`` an already running server is measured instead (one mode, labelled
``given``; its batching is whatever it was started with); ``--model`` names the model (default:
the first in ``GET /v1/models``).

A load is C closed-loop clients (asyncio + aiohttp): each sends a request, waits for the whole
answer and sends the next (a new seed each time), for ``--warmup`` seconds (not counted) and then
``--seconds`` (counted; ``--max-requests`` caps the counted requests). A request counts if it was
sent inside the counted window; the window's wall time runs until the last counted answer arrives.
Before a mode's loads one request is made and waited for, so loading the model is in no load.

Columns, one row per (mode, take duration, clients):

* ``reqs``: counted requests answered with 200; ``req/s``: those per wall second;
* ``audio s/s``: seconds of audio generated per wall second (``req/s`` × duration);
* ``p50/p95/p99 ms``: latency of those requests, sent → whole body received;
* ``batch``: mean ``X-Distill-Batch`` (how many requests the replica decoded together);
* ``errors``: non-200 answers and failed requests (the first one's text is in the JSON);
* ``p99≤3×p50``, ``no errors``: targets, pass/fail per row.

Then per (duration, clients), where both modes ran: batched ÷ unbatched throughput; the target is
≥ 2× at 16 clients. Targets are reported, never enforced: the exit status is 0 unless a server
could not be started (1). Only ratios measured side by side in one run mean much on a shared machine.
``--json`` prints one object ``{"config", "results", "ratios"}`` on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

MODEL_NAME = "bench"
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 600.0  # a 10 s take behind 16 others on 2 CPUs is slow, but an answer is an answer
READY = re.compile(r"serving at (http://\S+)")
TARGET_BATCH_RATIO = 2.0
TARGET_BATCH_CLIENTS = 16
TARGET_TAIL = 3.0  # p99 ≤ 3 × p50


def log(message: str) -> None:
    """Progress: on stderr, so that ``--json`` leaves stdout to the report."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the model and the server


def make_library(lib_dir: str, preset: str) -> None:
    """A library holding one model of ``preset`` with random weights, named :data:`MODEL_NAME`."""
    import torch  # here: a run against --url needs no torch in this process

    from distill.library import Library
    from distill.model import SpectrogramVAE
    from distill.model_file import ModelFile
    from distill.presets import preset_config
    from distill.stats import SpectralStats

    cfg = preset_config(preset, None, None)
    torch.manual_seed(0)
    model = SpectrogramVAE(cfg.model)
    n_mels = cfg.prepare.spectral.n_mels
    stats = SpectralStats(torch.full((2, n_mels), -6.0), torch.full((2, n_mels), 2.0))
    mf = ModelFile.create(model, cfg, stats, name=MODEL_NAME, lineage="bench")
    Library.open(lib_dir).add(mf, name=MODEL_NAME)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerFailed(Exception):
    """The server did not say it was serving; the message names its log."""


@dataclass
class Server:
    """A ``distill serve`` subprocess in its own session (so Ctrl-C on the benchmark does not reach it)."""

    proc: subprocess.Popen
    url: str
    log_path: Path


def _tail(path: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def start_server(lib_dir: str, mode: str, args: argparse.Namespace, log_path: Path) -> Server:
    """Start the server for ``mode`` and wait for its "serving at" line (read back from its log)."""
    cmd = [sys.executable, "-m", "distill.cli", "serve", "--library", lib_dir, "--port", str(free_port()),
           "--num-cpus", str(args.num_cpus), "--max-duration", "30",
           "--max-batch-size", str(args.max_batch_size), "--batch-wait-ms", str(args.batch_wait_ms)]
    if mode == "unbatched":
        cmd.append("--no-batching")
    log(f"[{mode}] starting: {' '.join(cmd[2:])}")
    with open(log_path, "wb") as out:  # the child keeps its own handle
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT_S:
        match = READY.search(log_path.read_text(errors="replace"))
        if match:
            log(f"[{mode}] serving at {match.group(1)} after {time.monotonic() - started:.0f} s")
            return Server(proc, match.group(1), log_path)
        if proc.poll() is not None:
            raise ServerFailed(f"the {mode} server exited with status {proc.returncode} before serving; "
                               f"log {log_path}:\n{_tail(log_path)}")
        time.sleep(0.5)
    stop_server(Server(proc, "", log_path))
    raise ServerFailed(f"the {mode} server did not say it was serving within {START_TIMEOUT_S:.0f} s; "
                       f"log {log_path}:\n{_tail(log_path)}")


def stop_server(server: Server) -> None:
    """SIGINT (a clean stop: Serve and Ray shut down); the whole session is killed only if that hangs."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log(f"server {server.proc.pid} ignored SIGINT for {STOP_TIMEOUT_S:.0f} s; killing its session")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()
    # The session may hold Ray workers that outlived the server; they belong to this run.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.proc.pid, signal.SIGKILL)
    if server.proc.returncode not in (0, None):
        log(f"server exited with status {server.proc.returncode}; log {server.log_path}")


# ---------------------------------------------------------------- the load


@dataclass
class Sample:
    latency: float  # seconds, sent → whole body received
    status: int | None  # None: no answer (connection error, timeout)
    batch: int | None
    error: str | None


@dataclass
class Window:
    """The clock of one load: warm-up, then the counted window, and the cap on counted requests."""

    measure_from: float
    measure_until: float
    max_requests: int | None
    counted: int = 0
    samples: list[Sample] = field(default_factory=list)
    last_answer: float = 0.0

    def claim(self, now: float) -> bool | None:
        """Whether a request sent ``now`` counts (True), is warm-up (False), or should not be sent (None)."""
        if now < self.measure_from:
            return False
        if now >= self.measure_until or (self.max_requests is not None and self.counted >= self.max_requests):
            return None
        self.counted += 1
        return True


async def request(session: aiohttp.ClientSession, url: str, body: dict) -> Sample:
    started = time.perf_counter()
    try:
        async with session.post(f"{url}/v1/generate", json=body) as response:
            payload = await response.read()
            latency = time.perf_counter() - started
            if response.status != 200:
                text = payload[:300].decode("utf-8", errors="replace")
                return Sample(latency, response.status, None, f"HTTP {response.status}: {text}")
            batch = response.headers.get("X-Distill-Batch")
            return Sample(latency, 200, int(batch) if batch and batch.isdigit() else None, None)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return Sample(time.perf_counter() - started, None, None, f"{type(exc).__name__}: {exc}")


async def client(session: aiohttp.ClientSession, url: str, model: str, duration: float, window: Window,
                 seeds: itertools.count) -> None:
    while True:
        counts = window.claim(time.perf_counter())
        if counts is None:
            return
        sample = await request(session, url, {"model": model, "seed": next(seeds), "duration": duration})
        if counts:
            window.samples.append(sample)
            window.last_answer = time.perf_counter()


async def run_load(url: str, model: str, duration: float, clients: int, args: argparse.Namespace,
                   seeds: itertools.count) -> dict:
    """C closed-loop clients for warm-up + window; the row of the report (see the module docstring)."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=clients)  # one connection per client, kept alive
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        now = time.perf_counter()
        window = Window(now + args.warmup, now + args.warmup + args.seconds, args.max_requests)
        await asyncio.gather(*(client(session, url, model, duration, window, seeds) for _ in range(clients)))
    wall = max(window.last_answer - window.measure_from, 1e-9)
    return summarize(window.samples, wall, duration, clients)


async def prime(url: str, model: str, duration: float) -> str | None:
    """One request, waited for, so the model's loading is in no load; the error if it failed."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:
        return (await request(session, url, {"model": model, "seed": 0, "duration": duration})).error


async def first_model(url: str) -> str:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.get(f"{url}/v1/models") as response:
                response.raise_for_status()
                models = (await response.json())["models"]
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ServerFailed(f"cannot list the models of {url}: {type(exc).__name__}: {exc}") from None
    if not models:
        raise ServerFailed(f"{url} offers no models")
    return models[0]["name"]


# ---------------------------------------------------------------- the report


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), ``q`` in 0…100."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(samples: list[Sample], wall: float, duration: float, clients: int) -> dict:
    ok = [s for s in samples if s.status == 200]
    errors = [s for s in samples if s.status != 200]
    latencies_ms = [s.latency * 1000 for s in ok]
    batches = [s.batch for s in ok if s.batch is not None]
    p50, p99 = percentile(latencies_ms, 50), percentile(latencies_ms, 99)
    return {"duration": duration, "clients": clients, "requests": len(ok), "wall_s": wall,
            "requests_per_s": len(ok) / wall, "audio_s_per_s": len(ok) * duration / wall,
            "p50_ms": p50, "p95_ms": percentile(latencies_ms, 95), "p99_ms": p99,
            "mean_batch": sum(batches) / len(batches) if batches else None,
            "errors": len(errors), "first_error": errors[0].error if errors else None,
            "tail_ok": None if p50 is None else p99 <= TARGET_TAIL * p50,
            "no_errors": not errors and bool(ok)}


def ratios(results: list[dict]) -> list[dict]:
    """Batched ÷ unbatched throughput per (duration, clients) where both ran."""
    by_key = {(r["mode"], r["duration"], r["clients"]): r for r in results}
    out = []
    for (mode, duration, clients), batched in by_key.items():
        unbatched = by_key.get(("unbatched", duration, clients))
        if mode != "batched" or unbatched is None:
            continue
        ratio = batched["requests_per_s"] / unbatched["requests_per_s"] if unbatched["requests_per_s"] else None
        target = clients == TARGET_BATCH_CLIENTS
        out.append({"duration": duration, "clients": clients, "batched_requests_per_s": batched["requests_per_s"],
                    "unbatched_requests_per_s": unbatched["requests_per_s"], "ratio": ratio,
                    "target_ok": (ratio is not None and ratio >= TARGET_BATCH_RATIO) if target else None})
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _verdict(ok: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "-"}[ok]


def print_table(config: dict, results: list[dict], ratio_rows: list[dict]) -> None:
    print(f"distill serve under load: {config['url'] or 'own server'}, model {config['model']}, "
          f"{config['num_cpus']} CPUs, {config['seconds']:g} s per load after {config['warmup']:g} s warm-up")
    print(f"{'mode':<10}{'take s':>7}{'clients':>8}{'reqs':>6}{'req/s':>8}{'audio s/s':>10}{'p50 ms':>9}"
          f"{'p95 ms':>9}{'p99 ms':>9}{'batch':>7}{'errors':>7}{'p99≤3×p50':>11}{'no errors':>10}")
    for r in results:
        print(f"{r['mode']:<10}{r['duration']:>7g}{r['clients']:>8}{r['requests']:>6}{r['requests_per_s']:>8.2f}"
              f"{r['audio_s_per_s']:>10.1f}{_fmt(r['p50_ms'], '.0f'):>9}{_fmt(r['p95_ms'], '.0f'):>9}"
              f"{_fmt(r['p99_ms'], '.0f'):>9}{_fmt(r['mean_batch'], '.1f'):>7}{r['errors']:>7}"
              f"{_verdict(r['tail_ok']):>11}{_verdict(r['no_errors']):>10}")
    for r in results:
        if r["first_error"]:
            print(f"first error ({r['mode']}, {r['duration']:g} s, {r['clients']} clients): {r['first_error']}")
    if ratio_rows:
        print()
        print(f"{'take s':>7}{'clients':>8}{'batched req/s':>15}{'unbatched req/s':>17}{'ratio':>8}"
              f"{'≥2× at 16':>11}")
        for r in ratio_rows:
            print(f"{r['duration']:>7g}{r['clients']:>8}{r['batched_requests_per_s']:>15.2f}"
                  f"{r['unbatched_requests_per_s']:>17.2f}{_fmt(r['ratio'], '.2f'):>7}×{_verdict(r['target_ok']):>11}")


# ---------------------------------------------------------------- main


def _numbers(text: str, kind):
    return [kind(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,16", help="comma-separated concurrent clients, one load each")
    parser.add_argument("--durations", default="1,10", help="comma-separated take durations in seconds")
    parser.add_argument("--modes", default="batched,unbatched", help="batched, unbatched or both (own server)")
    parser.add_argument("--seconds", type=float, default=20.0, help="counted seconds per load (default 20)")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds before each load (default 2)")
    parser.add_argument("--max-requests", type=int, default=None, help="at most this many counted requests per load")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="the server's --num-cpus (default all)")
    parser.add_argument("--preset", default="tiny", help="the temporary model's preset (default tiny)")
    parser.add_argument("--max-batch-size", type=int, default=16, help="the server's --max-batch-size")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, help="the server's --batch-wait-ms")
    parser.add_argument("--url", default=None, help="measure this running server instead of starting one")
    parser.add_argument("--model", default=None, help="with --url: the model (default: the server's first)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout instead of the table")
    args = parser.parse_args(argv)
    args.clients, args.durations = _numbers(args.clients, int), _numbers(args.durations, float)
    args.modes = ["given"] if args.url else _numbers(args.modes, str)
    unknown = set(args.modes) - {"batched", "unbatched", "given"}
    if unknown or not args.clients or not args.durations:
        parser.error(f"bad --modes/--clients/--durations ({', '.join(sorted(unknown)) or 'empty'})")
    if args.url:
        args.url = args.url.rstrip("/")
    return args


def measure_mode(mode: str, url: str, model: str, args: argparse.Namespace) -> list[dict]:
    """Every (duration, clients) load against one server."""
    problem = asyncio.run(prime(url, model, args.durations[0]))
    if problem:
        log(f"[{mode}] the priming request failed: {problem}")
    seeds = itertools.count(1)  # a new seed per request, so no take is a repeat the server could reuse
    rows = []
    for duration in args.durations:
        for clients in args.clients:
            log(f"[{mode}] {duration:g} s takes, {clients} clients …")
            row = {"mode": mode, **asyncio.run(run_load(url, model, duration, clients, args, seeds))}
            log(f"[{mode}]   {row['requests']} requests, {row['requests_per_s']:.2f} req/s, "
                f"p50 {_fmt(row['p50_ms'], '.0f')} ms, {row['errors']} errors")
            rows.append(row)
    return rows


def run_own_servers(args: argparse.Namespace, tmp: Path) -> list[dict]:
    lib_dir = str(tmp / "library")
    log(f"writing a {args.preset} model (random weights) to {lib_dir}")
    make_library(lib_dir, args.preset)
    results = []
    for mode in args.modes:
        server = start_server(lib_dir, mode, args, tmp / f"server-{mode}.log")
        try:
            results += measure_mode(mode, server.url, MODEL_NAME, args)
        finally:
            log(f"[{mode}] stopping the server")
            stop_server(server)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.url:
            model = args.model or asyncio.run(first_model(args.url))
            results = measure_mode("given", args.url, model, args)
        else:
            model = MODEL_NAME
            tmp = Path(tempfile.mkdtemp(prefix="serve_load-"))
            results = run_own_servers(args, tmp)
            shutil.rmtree(tmp, ignore_errors=True)  # kept when a server failed: its log is the evidence
    except ServerFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ratio_rows = ratios(results)
    config = {"url": args.url, "model": model, "preset": None if args.url else args.preset, "modes": args.modes,
              "clients": args.clients, "durations": args.durations, "seconds": args.seconds, "warmup": args.warmup,
              "max_requests": args.max_requests, "num_cpus": None if args.url else args.num_cpus,
              "max_batch_size": None if args.url else args.max_batch_size,
              "batch_wait_ms": None if args.url else args.batch_wait_ms,
              "targets": {"batched_over_unbatched_at_16_clients": TARGET_BATCH_RATIO,
                          "p99_over_p50_at_most": TARGET_TAIL, "errors": 0}}
    if args.json:
        print(json.dumps({"config": config, "results": results, "ratios": ratio_rows}, indent=2))
    else:
        print_table(config, results, ratio_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
