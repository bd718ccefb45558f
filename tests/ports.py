"""A free TCP port on 127.0.0.1 for the servers the tests start (shared by the test modules)."""

import socket


def free_port() -> int:
    """A port nothing listens on now (the OS's pick; another process could take it before the test does)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
