"""The HTTP side of ``serve.py``: the page, ``POST /predict``, the models loaded once, their batchers."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import torch
from PIL import Image

from ..errors import ImageReadError, OptionError
from ..models import Prediction, RunConfig, Top5Classifier, get_model
from ..settings import MAX_PIXELS
from ..transforms import decode_bytes
from .batching import Busy, DynamicBatcher

PAGE = (Path(__file__).resolve().parent / "page.html").read_bytes()
# The page is inline; this keeps the browser from fetching anything from anywhere else.
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)
_DISCARD_LIMIT = 256 * 2**20  # larger oversized bodies are not read to the end: the connection is closed
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class RequestError(Exception):
    """A request the server refuses, with its HTTP status and a reason the client can act on."""

    def __init__(self, status: HTTPStatus, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 20 * 2**20
    max_pixels: int = field(default_factory=MAX_PIXELS.get)  # TOP5HUB_MAX_PIXELS when the server starts
    max_inflight: int = 32  # requests holding a body or decoded image at once: bounds the memory they take
    max_batch: int = 16
    max_wait_s: float = 0.005
    max_queue: int = 64


@dataclass(frozen=True)
class Job:
    image: torch.Tensor  # upright RGB uint8 [3, H, W]
    k: int
    explain: bool


class ModelPool:
    """The models a server offers: each loaded once, on first use, with one batcher of its own."""

    def __init__(self, names: list[str], limits: Limits, config: RunConfig | None = None):
        """``config``: how every model runs (its ``device`` is where the models are loaded)."""
        if not names:
            raise OptionError("no models to serve: pass at least one name to --models")
        self.names, self.limits, self.config = list(dict.fromkeys(names)), limits, config or RunConfig()
        self._loaded: dict[str, tuple[Top5Classifier, DynamicBatcher[Job]]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> tuple[Top5Classifier, DynamicBatcher[Job]]:
        if name not in self.names:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"unknown model {name!r}: choose one of {', '.join(self.names)}"
            )
        with self._lock:  # one load per model, however many requests arrive at once
            if name not in self._loaded:
                try:
                    model = get_model(name, device=self.config.device)
                except Exception as error:  # no weights offline, a corrupt file: say so, the others still serve
                    raise RequestError(
                        HTTPStatus.SERVICE_UNAVAILABLE, f"model {name} cannot be loaded: {error}"
                    ) from None
                batcher: DynamicBatcher[Job] = DynamicBatcher(
                    lambda jobs: run_jobs(model, jobs, self.config),
                    max_batch=self.limits.max_batch,
                    max_wait_s=self.limits.max_wait_s,
                    max_queue=self.limits.max_queue,
                    name=f"batcher-{name}",
                )
                self._loaded[name] = (model, batcher)
            return self._loaded[name]

    def close(self) -> None:
        with self._lock:
            for _, batcher in self._loaded.values():
                batcher.close()
            self._loaded.clear()


def run_jobs(model: Top5Classifier, jobs: list[Job], config: RunConfig) -> list[dict[str, Any]]:
    """Classify a batch of jobs through ``predict``: explained ones together (Grad-CAM), the others together."""
    results: list[dict[str, Any]] = [{} for _ in jobs]
    for explain in (False, True):
        positions = [number for number, job in enumerate(jobs) if job.explain == explain]
        if not positions:
            continue
        predictions = model.predict(
            [jobs[p].image for p in positions],
            k=max(jobs[p].k for p in positions),
            explain=explain,
            config=RunConfig.of(config, batch_size=len(positions), device=None, workers=0),
        )
        for position, prediction in zip(positions, predictions, strict=True):
            results[position] = answer(prediction, jobs[position].k, explain)
    return results


def answer(prediction: Prediction, k: int, explain: bool) -> dict[str, Any]:
    """The JSON of one image: its top-k, and when explained its heatmap as PNG data URLs."""
    if prediction.error:
        raise RuntimeError(prediction.error)  # decoded before queueing: only a fault of ours gets here
    result: dict[str, Any] = {"topk": prediction.topk()[:k]}
    if explain and prediction.explanation is not None and prediction.thumbnail is not None:
        picture = prediction.thumbnail
        heat = prediction.explanation.array((picture.height, picture.width))
        result["heatmap"] = png_data_url(Image.fromarray((heat * 255).round().astype("uint8"), "L"))
        result["overlay"] = png_data_url(prediction.explanation.overlay(picture))
    return result


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class PredictServer(ThreadingHTTPServer):
    """A threaded HTTP server (one thread per connection) holding the model pool and the limits."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], pool: ModelPool, limits: Limits, quiet: bool = True):
        super().__init__(address, Handler)
        self.pool, self.limits, self.quiet = pool, limits, quiet
        self.inflight = threading.BoundedSemaphore(limits.max_inflight)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        assert isinstance(host, str)  # bound: getsockname()'s host (typeshed also allows the bytes one may pass)
        return f"http://{host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.pool.close()


class Handler(BaseHTTPRequestHandler):
    server: PredictServer
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connection
    server_version = "top5hub-serve"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/":
            self._send(HTTPStatus.OK, PAGE, "text/html; charset=utf-8", {"Content-Security-Policy": PAGE_POLICY})
        elif path == "/models":
            limits = self.server.limits
            self._json(HTTPStatus.OK, {"models": self.server.pool.names, "max_upload_bytes": limits.max_upload_bytes})
        else:
            self._json(
                HTTPStatus.NOT_FOUND, {"error": f"no page {path!r}: GET / for the page, POST /predict for the API"}
            )

    def do_POST(self) -> None:
        try:
            if urlsplit(self.path).path != "/predict":
                raise RequestError(HTTPStatus.NOT_FOUND, "POST /predict?model=...&k=...&explain=... with the image")
            if not self.server.inflight.acquire(timeout=30):
                raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE, "too many requests at once: retry shortly")
            try:
                self._json(HTTPStatus.OK, self._predict())
            finally:
                self.server.inflight.release()
        except (RequestError, Busy) as error:
            self.close_connection = True  # the body may be unread: this connection cannot carry another request
            status = error.status if isinstance(error, RequestError) else HTTPStatus.SERVICE_UNAVAILABLE
            self._json(status, {"error": str(error)})
        except Exception as error:  # a client always gets an answer, never a dropped connection
            self.close_connection = True
            self.log_error("predict failed: %r", error)
            self._json(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"the server failed: {type(error).__name__}: {error}"}
            )

    def _predict(self) -> dict[str, Any]:
        """Read, decode and classify the upload. ``time_ms`` counts from the body's first byte to the answer
        (reading, decoding, waiting for a batch, inference), not a model's one-time loading."""
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        name = _one(query, "model", self.server.pool.names[0])
        k = _k(_one(query, "k", "5"))
        explain = _flag(_one(query, "explain", "0"))
        model, batcher = self.server.pool.get(name)  # unknown model: 400 before the body is read
        started = time.perf_counter()
        body = self._body()
        data = _image_bytes(body, self.headers.get("Content-Type", ""))
        try:
            image = decode_bytes(data, "the uploaded image", self.server.limits.max_pixels)
        except ImageReadError as error:
            raise RequestError(HTTPStatus.BAD_REQUEST, str(error)) from None
        del body, data
        (result, batch_size) = batcher.submit(Job(image, k, explain)).result(timeout=120)
        return {
            "model": name,
            "weights": model.meta["weights"],
            **result,
            "time_ms": round(1000 * (time.perf_counter() - started), 2),
            "batch_size": batch_size,
        }

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the image with a Content-Length header")
        try:
            size = int(length)
        except ValueError:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length {length!r} is not a number") from None
        limit = self.server.limits.max_upload_bytes
        if size > limit:
            self._discard(size)
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the upload is {size} bytes, over the limit of {limit} bytes (serve.py --max-upload-mb)",
            )
        if size <= 0:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is empty: send the image's bytes")
        return self.rfile.read(size)

    def _discard(self, size: int) -> None:
        """Read and drop an oversized body in small chunks (no memory grows), so the client, still sending, gets
        the 413 instead of a reset connection. Bodies over ``_DISCARD_LIMIT`` are cut off instead."""
        self.close_connection = True
        left = size if size <= _DISCARD_LIMIT else 0
        while left > 0:
            chunk = self.rfile.read(min(left, 2**16))
            if not chunk:
                return
            left -= len(chunk)

    def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def _one(query: dict[str, list[str]], key: str, default: str) -> str:
    values = query.get(key, [default])
    if len(values) != 1:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{key} given {len(values)} times: give it once")
    return values[0]


def _k(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"k must be an integer from 1 to 1000, got {text!r}")
    return int(text)


def _flag(text: str) -> bool:
    if text.lower() not in _TRUE | _FALSE:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"explain must be 1/true or 0/false, got {text!r}")
    return text.lower() in _TRUE


def _image_bytes(body: bytes, content_type: str) -> bytes:
    """The image in a request body: the body itself, or the first file of a multipart/form-data body."""
    if not content_type.lower().startswith("multipart/form-data"):
        return body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
    )
    if not message.is_multipart():
        raise RequestError(HTTPStatus.BAD_REQUEST, "multipart/form-data body without parts: check the boundary")
    parts = list(message.iter_parts())
    files = [part for part in parts if part.get_filename()] or parts
    data = files[0].get_payload(decode=True) if files else None
    if not isinstance(data, bytes) or not data:  # None for a part that is itself multipart
        raise RequestError(HTTPStatus.BAD_REQUEST, "the multipart body has no file: send the image as a file field")
    return data
