"""The serve command in a child process on a free loopback port: for the tests, the load benchmark and notebooks."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The folder that holds this top5hub package (a checkout's src/, or site-packages): the child imports the same one.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@contextmanager
def running_server(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None, stop_timeout: float = 40
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``python -m top5hub.cli.serve --host 127.0.0.1 --port 0 *args``; yield its URL and process; stop it on
    exit (SIGTERM: it finishes what is in flight; killed after ``stop_timeout`` s). ``env``: variables to set.

    The server's stderr goes to a temporary file (a pipe nobody reads would block it once full): read it with
    :func:`stderr_text`, also after the ``with`` block (the file goes when the process object does).

    Port 0 lets the system pick a free port, which the server prints: no race with other processes.
    """
    log = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 (read after the with)
    process = subprocess.Popen(
        [sys.executable, "-m", "top5hub.cli.serve", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={
            **os.environ,
            **(env or {}),
            "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
        },
    )
    process.stderr = log  # read by stderr_text(process)
    try:
        url = _announced_url(process, timeout)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _announced_url(process: subprocess.Popen, timeout: float) -> str:
    """The URL from the server's first line ("Serving ... on http://127.0.0.1:PORT/"), or its error."""
    line: list[str] = []
    stdout = process.stdout
    assert stdout is not None  # started with stdout=PIPE
    reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line or " on http://" not in line[0]:
        process.kill()
        process.wait()
        raise RuntimeError(f"serve.py did not start within {timeout:g} s: {stderr_text(process)[-2000:]}")
    return line[0].rsplit(" on ", 1)[1].strip()


def stderr_text(process: subprocess.Popen) -> str:
    """Everything a :func:`running_server` process has written on stderr so far."""
    log = process.stderr
    assert log is not None  # running_server's temporary file
    log.seek(0)
    return log.read()
