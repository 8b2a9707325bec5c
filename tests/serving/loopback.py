"""A real uvicorn server on a loopback port, in a thread of the test process, for tests that
need HTTP as a client sends it (chunked bodies, concurrent requests, the OpenAPI schema)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(url: str, alive: Callable[[], bool], seconds: float, pause: float) -> bool:
    """Poll ``url``'s ``/readyz`` until it answers 200 (True), or until the server is no longer
    ``alive`` or ``seconds`` have passed (False)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if not alive() or time.monotonic() > deadline:
            return False
        time.sleep(pause)


@contextmanager
def loopback_server(app: Any, start_seconds: float = 120.0) -> Iterator[str]:
    """A real uvicorn server running ``app`` on a free loopback port, in a thread of this
    process (its lifespan loads the model); yields its URL once ``/readyz`` answers 200."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                            access_log=False, lifespan="on")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    if not wait_until_ready(url, thread.is_alive, start_seconds, 0.05):
        server.should_exit = True
        pytest.fail("uvicorn did not start")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
