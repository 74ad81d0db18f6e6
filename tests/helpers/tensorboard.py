"""A real TensorBoard server on loopback, and polling its HTTP API until it has loaded the event files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STARTUP_SECONDS = 90
LOAD_SECONDS = 60


def get_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def start_tensorboard(logdir: Path, log_file: Path) -> tuple[subprocess.Popen, str]:
    """Start TensorBoard on a free loopback port (port 0); return the process and its base URL."""
    handle = log_file.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0",
         "--load_fast", "false", "--reload_interval", "1"],
        stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", log_file.read_text())
        if match:
            return process, f"http://127.0.0.1:{match.group(1)}"
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.kill()
    raise AssertionError(f"TensorBoard did not start within {STARTUP_SECONDS}s:\n{log_file.read_text()}")


def wait_for(fetch, ready, what: str):
    """Poll ``fetch()`` until ``ready(result)``; TensorBoard loads event files in the background."""
    deadline = time.monotonic() + LOAD_SECONDS
    while True:
        result = fetch()
        if ready(result) or time.monotonic() > deadline:
            assert ready(result), f"{what} not served within {LOAD_SECONDS}s: {result}"
            return result
        time.sleep(1)


@contextmanager
def tensorboard_server(logdir: Path, log_file: Path) -> Iterator[str]:
    """A TensorBoard server on ``logdir`` for the ``with`` block (yields its URL); stopped, or killed, afterwards."""
    process, url = start_tensorboard(logdir, log_file)
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
