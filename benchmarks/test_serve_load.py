"""serve.py under load on loopback: 8 clients x 200 requests (``--quick``: x 10), one model, dynamic batching.

Records requests/s, p50/p99 latency as clients see it, the batch sizes the server formed, and the
server's memory (RSS) before and after the load and at its peak: memory must not follow the request count.
Then the same normal clients beside slow ones (64 sending their headers a byte every 0.5 s, 32 uploads that
stall after 10 bytes, each reconnecting once refused): what the normal clients see (p50/p99, errors) is the
figure, beside what the slow ones got (408s).
A study (``--studies``, ``-m study`` or this file named); its figures are a record (``record_figures``), not a
pytest-benchmark row.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from benchmarks.timing import percentiles
from top5hub.serve.process import running_server
from top5hub.transforms import image_files

pytestmark = pytest.mark.study

CLIENTS = 8
MODEL = "efficientnet_lite0"
SLOW_HEADERS, STALLED_UPLOADS = 64, 32
# Short deadlines, so that a quick run sees slow clients refused and coming back; the defaults are 10 s and 60 s.
SLOW_SERVER = ("--header-timeout", "2", "--body-timeout", "4")


def test_serve_load_on_loopback(images_dir, bench_settings, record_figures):
    per_client = 10 if bench_settings["quick"] else 200
    images = [Path(file).read_bytes() for file in list(image_files(images_dir))[:CLIENTS]]
    with running_server("--models", MODEL) as (url, process):
        address = urlsplit(url)
        expected = [_ask(_connection(address), image)["topk"][0]["index"] for image in images]  # loads the model
        rss_before = _memory_kib(process.pid, "VmRSS")
        latencies: list[float] = []
        batch_sizes: list[int] = []
        wrong: list[str] = []
        lock = threading.Lock()

        def client(number: int) -> None:
            connection = _connection(address)  # keep-alive, as a browser or a script with a session would
            for request in range(per_client):
                image = (number + request) % len(images)
                started = time.perf_counter()
                answer = _ask(connection, images[image])
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    batch_sizes.append(answer.get("batch_size", 0))
                    if answer.get("topk", [{}])[0].get("index") != expected[image]:
                        wrong.append(str(answer)[:300])
            connection.close()

        threads = [threading.Thread(target=client, args=(number,)) for number in range(CLIENTS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        rss_after = _memory_kib(process.pid, "VmRSS")
        rss_peak = _memory_kib(process.pid, "VmHWM")

    latency = percentiles(latencies, batch_size=1)  # per request
    record_figures(
        "serve load",
        kind="serve_load",
        arch=MODEL,
        device="cpu",
        clients=CLIENTS,
        requests=len(latencies),
        requests_per_s=len(latencies) / wall,
        p50_ms=latency["p50_ms"],
        p99_ms=latency["p99_ms"],
        mean_batch_size=statistics.mean(batch_sizes),
        max_batch_size=max(batch_sizes),
        wrong_answers=len(wrong),
        server_rss_before_bytes=1024 * rss_before,
        server_rss_after_bytes=1024 * rss_after,
        server_rss_peak_bytes=1024 * rss_peak,
    )
    assert not wrong, wrong[:3]  # under load every client still gets its own image's answer


def test_serve_beside_slow_clients(images_dir, bench_settings, record_figures):
    per_client = 10 if bench_settings["quick"] else 200
    images = [Path(file).read_bytes() for file in list(image_files(images_dir))[:CLIENTS]]
    with running_server("--models", MODEL, *SLOW_SERVER) as (url, process):
        address = urlsplit(url)
        expected = [_ask(_connection(address), image)["topk"][0]["index"] for image in images]
        stop = threading.Event()
        slow_statuses: Counter[str] = Counter()
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()

        def slow_headers() -> None:  # a byte of the headers every 0.5 s; once refused, again
            while not stop.is_set():
                status = "reset"
                try:
                    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
                        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                        while not stop.is_set() and not select.select([sock], [], [], 0.5)[0]:
                            sock.sendall(b"X")
                        status = "stopped" if stop.is_set() else _status(sock)
                except OSError as error:
                    status = type(error).__name__
                with lock:
                    slow_statuses[f"slow headers: {status}"] += 1

        def stalled_upload() -> None:  # 10 bytes of 100,000, then nothing; once refused, again
            while not stop.is_set():
                status = "reset"
                try:
                    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
                        head = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
                        sock.sendall(head + b"0123456789")
                        while not stop.is_set() and not select.select([sock], [], [], 0.5)[0]:
                            pass
                        status = "stopped" if stop.is_set() else _status(sock)
                except OSError as error:
                    status = type(error).__name__
                with lock:
                    slow_statuses[f"stalled upload: {status}"] += 1

        def client(number: int) -> None:
            connection = _connection(address)
            for request in range(per_client):
                image = (number + request) % len(images)
                started = time.perf_counter()
                try:
                    answer = _ask(connection, images[image])
                    error = "" if answer["topk"][0]["index"] == expected[image] else f"wrong answer {answer}"
                except (AssertionError, OSError, http.client.HTTPException, ValueError) as failure:
                    error = f"{type(failure).__name__}: {failure}"[:300]
                    connection.close()
                    connection = _connection(address)
                with lock:
                    latencies.append(time.perf_counter() - started)
                    if error:
                        errors.append(error)
            connection.close()

        slow = [threading.Thread(target=slow_headers) for _ in range(SLOW_HEADERS)]
        slow += [threading.Thread(target=stalled_upload) for _ in range(STALLED_UPLOADS)]
        for thread in slow:
            thread.start()
        time.sleep(1)  # the slow clients are in place before the normal ones start
        normal = [threading.Thread(target=client, args=(number,)) for number in range(CLIENTS)]
        started = time.perf_counter()
        for thread in normal:
            thread.start()
        for thread in normal:
            thread.join()
        wall = time.perf_counter() - started
        stop.set()
        for thread in slow:
            thread.join()
        rss_peak = _memory_kib(process.pid, "VmHWM")

    latency = percentiles(latencies, batch_size=1)  # per request
    record_figures(
        "serve load",
        kind="serve_slow_clients",
        arch=MODEL,
        device="cpu",
        clients=CLIENTS,
        slow_headers=SLOW_HEADERS,
        stalled_uploads=STALLED_UPLOADS,
        server_flags=" ".join(SLOW_SERVER),
        requests=len(latencies),
        requests_per_s=len(latencies) / wall,
        p50_ms=latency["p50_ms"],
        p99_ms=latency["p99_ms"],
        errors=len(errors),
        slow_client_answers=dict(sorted(slow_statuses.items())),
        server_rss_peak_bytes=1024 * rss_peak,
    )
    assert not errors, errors[:3]  # every normal request answered, and right, however the slow ones behave


def _status(sock: socket.socket) -> str:
    """The status of the answer waiting on ``sock`` (the server has refused the request)."""
    data = sock.recv(4096)
    return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"


def _connection(address) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(address.hostname, address.port, timeout=300)


def _ask(connection: http.client.HTTPConnection, image: bytes) -> dict:
    connection.request(
        "POST", f"/predict?model={MODEL}&k=5", body=image, headers={"Content-Type": "application/octet-stream"}
    )
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.status == 200, answer
    return answer


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")
