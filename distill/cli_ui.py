"""``distill ui`` (and bare ``distill``): the Gradio UI in the browser, served from this machine.

Binds 127.0.0.1 unless ``--host`` says otherwise. Bad settings, an unusable library or a taken port
are refused with one line before anything is served; Ctrl-C stops the server (a training job it
started keeps running in the background and is shown again by the next ``distill ui``).
"""

from __future__ import annotations

import argparse
import socket
import sys

from distill.cli_common import EXIT_OK, CommandError

EXIT_INTERRUPTED = 130


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: a port in TIME_WAIT is free
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ui(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise CommandError(f"--port must be from 1 to 65535, got {args.port}")
    if not _port_free(args.host, args.port):
        raise CommandError(f"--port: {args.host}:{args.port} is in use (another distill ui?); pick another with "
                           "--port")
    from distill.ui_backend import UiBackend

    try:
        backend = UiBackend(library=args.library, history=args.history_dir, workspace=args.workspace,
                            device=args.device)
    except (ValueError, OSError) as exc:  # settings, library or workspace that cannot be used
        raise CommandError(str(exc)) from None
    from distill.ui_app import launch

    print(f"distill UI at http://{args.host}:{args.port} (library {backend.library_location}); Ctrl-C stops",
          flush=True)
    try:
        launch(backend, host=args.host, port=args.port, open_browser=args.open)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr, flush=True)
        return EXIT_OK
    except OSError as exc:
        raise CommandError(f"cannot serve the UI on {args.host}:{args.port}: {exc}") from None
    return EXIT_OK


def add_ui_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--library", default=None, help="model library folder or URI (default: from settings)")
    p.add_argument("--history-dir", default=None, help="generation history folder or URI (default: from settings)")
    p.add_argument("--workspace", default=None,
                   help="folder for uploads, exports and the background job's record (default: next to the history)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (default: from settings)")
    p.add_argument("--open", action="store_true", help="open the UI in the default browser")
    p.set_defaults(func=_ui)


def add_ui_command(sub) -> None:
    """Register ``ui`` on the ``distill`` subcommand parser ``sub``."""
    add_ui_arguments(sub.add_parser("ui", help="open the UI in a browser (Data, Train, Generate, Library)"))
