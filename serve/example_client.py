#!/usr/bin/env python
"""A client of the generation endpoint, standard library only (copy it into your own scripts).

    python serve/example_client.py [--url http://127.0.0.1:8000] [--model NAME] [-o DIR]
    python serve/example_client.py --start [--library PATH] [--model NAME] [-o DIR]

It lists the models and their sliders, makes two takes (a 4 s mono WAV, then a 6 s stereo FLAC with
the first slider moved) and writes them under the names the server suggests, then sends one bad
request to show the error a client gets. ``--start`` starts ``distill serve`` on a free local port
first and stops it (Ctrl-C's signal) at the end; that is what ``make demo`` does.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 300


def call(url: str, body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``, or POST ``body`` as JSON: (status, headers with lower-case names, body bytes);
    4xx/5xx answers are returned too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:  # the endpoint's 4xx: a JSON body naming the field
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def take(url: str, out: Path, body: dict) -> None:
    status, headers, data = call(f"{url}/v1/generate", body)
    if status != 200:
        raise SystemExit(f"error: {status} {data.decode(errors='replace')}")
    name = headers["content-disposition"].split('filename="')[1].rstrip('"')
    (out / name).write_bytes(data)
    print(f"  {out / name}: {headers['content-type']}, {headers['x-distill-duration']} s, seed "
          f"{headers['x-distill-seed']}, {headers['x-distill-sample-rate']} Hz, "
          f"{headers['x-distill-channels']} channel(s)")


def run(url: str, model: str | None, out: Path) -> None:
    status, _, data = call(f"{url}/v1/models")
    models = json.loads(data)["models"] if status == 200 else []
    if not models:
        raise SystemExit(f"error: {url} offers no models ({status})")
    for m in models:
        sliders = ", ".join(f"{s['index']}={s['label']}" for s in m["sliders"]) or "no sliders"
        print(f"model {m['name']} ({m['id']}): {sliders}")
    chosen = next((m for m in models if model in (None, m["name"], m["id"])), None)
    if chosen is None:
        raise SystemExit(f"error: {url} has no model {model!r}")
    out.mkdir(parents=True, exist_ok=True)
    print(f"generating with {chosen['name']}:")
    take(url, out, {"model": chosen["name"], "seed": 1, "duration": 4})
    moved = {str(chosen["sliders"][0]["index"]): 6} if chosen["sliders"] else {}
    take(url, out, {"model": chosen["name"], "seed": 2, "duration": 6, "sliders": moved, "evolution": 0.6,
                    "format": "flac", "spatial": "stereo", "width": 0.8, "loudness": -16})
    status, _, data = call(f"{url}/v1/generate", {"model": chosen["name"], "duration": 100000})
    print(f"a bad request gets {status}: {json.loads(data)['error']}")


def start_server(library: str | None) -> tuple[subprocess.Popen, str]:
    """``distill serve`` on a free port of 127.0.0.1; returns it once it says it is serving."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "distill.cli", "serve", "--port", str(port)]
    cmd += ["--library", library] if library else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    line = proc.stdout.readline()  # the "serving at" line, or nothing if it failed (its stderr says why)
    if not line.startswith("serving at "):
        proc.wait(START_TIMEOUT_S)
        raise SystemExit(f"error: distill serve did not start (exit status {proc.returncode})")
    print(line.strip())
    return proc, line.split()[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="a running server (default %(default)s)")
    parser.add_argument("--model", default=None, help="model name or id (default: the server's first)")
    parser.add_argument("-o", "--out", default="served", help="folder for the takes (default ./served)")
    parser.add_argument("--start", action="store_true", help="start `distill serve` for this run and stop it after")
    parser.add_argument("--library", default=None, help="with --start: the library to serve")
    args = parser.parse_args(argv)
    server, url = start_server(args.library) if args.start else (None, args.url.rstrip("/"))
    try:
        run(url, args.model, Path(args.out))
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)  # a clean stop: Serve and Ray shut down, exit status 0
            server.wait(120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
