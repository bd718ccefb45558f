"""``distill serve``: the HTTP generation endpoint on an embedded local Ray (or the cluster at ``RAY_ADDRESS``).

Binds 127.0.0.1 unless ``--host`` says otherwise; Ctrl-C (or SIGTERM) stops Serve and Ray and
exits 0. Bad settings, an unknown library or model, or a taken port are refused before Ray starts.
"""

from __future__ import annotations

import argparse
import sys

from distill.cli_common import EXIT_OK, CommandError

EXIT_INTERRUPTED = 130


def _serve(args: argparse.Namespace) -> int:
    from distill.ray_layer.serving import ServeSettings, run_server

    if args.replicas < 1:
        raise CommandError(f"--replicas must be at least 1, got {args.replicas}")
    if not 0 < args.port < 65536:
        raise CommandError(f"--port must be from 1 to 65535, got {args.port}")
    try:
        settings = ServeSettings(library=args.library, models=tuple(args.models or ()),
                                 max_models_per_replica=args.max_models, max_duration=args.max_duration,
                                 max_body_bytes=args.max_body_kb * 1024, batching=not args.no_batching,
                                 max_batch_size=args.max_batch_size, batch_wait_ms=args.batch_wait_ms,
                                 device="cuda" if args.gpu else args.device,
                                 cors_origins=tuple(args.cors_origin or ()))

        def ready(url: str) -> None:
            print(f"serving at {url} (API docs: {url}/docs); Ctrl-C stops", flush=True)

        run_server(settings, host=args.host, port=args.port, replicas=args.replicas, replica_cpus=args.replica_cpus,
                   gpus=1.0 if args.gpu else 0.0, num_cpus=args.num_cpus, on_ready=ready)
    except ValueError as exc:  # settings, library, unknown model, port in use
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:  # while starting; Serve and Ray are stopped on the way out
        print("distill: interrupted before the server was ready", file=sys.stderr)
        return EXIT_INTERRUPTED
    print("stopped", file=sys.stderr, flush=True)
    return EXIT_OK


def add_serve_command(sub) -> None:
    """Register ``serve`` on the ``distill`` subcommand parser ``sub``."""
    p = sub.add_parser("serve", help="serve generation over HTTP (Ray Serve) from the model library")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help="offer only these models (names or ids; default: every model in the library)")
    p.add_argument("--library", default=None, help="model library folder or URI (default: from settings)")
    p.add_argument("--max-duration", type=float, default=60.0, help="longest take one request may ask, in seconds "
                   "(default 60)")
    p.add_argument("--max-models", type=int, default=4, help="models kept loaded per replica, least recently used "
                   "dropped first (default 4)")
    p.add_argument("--max-batch-size", type=int, default=16, help="requests decoded together (default 16)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0,
                   help="how long a request waits for others to batch with (default 5 ms)")
    p.add_argument("--no-batching", action="store_true", help="decode every request alone")
    p.add_argument("--max-body-kb", type=int, default=64, help="largest request body in KiB (default 64)")
    p.add_argument("--cors-origin", nargs="+", default=None, metavar="ORIGIN",
                   help="web pages allowed to call the API from a browser, e.g. http://localhost:5173 (default none)")
    p.add_argument("--replicas", type=int, default=1, help="generating replicas (default 1)")
    p.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs reserved per replica (default 1)")
    p.add_argument("--gpu", action="store_true", help="one GPU per replica (decoding on CUDA)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default: from settings)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for the embedded Ray (default: all)")
    p.set_defaults(func=_serve)
