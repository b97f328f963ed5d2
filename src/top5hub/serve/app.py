"""The HTTP side of ``serve.py``: the page, ``POST /predict``, ``GET /models`` and ``/health``, the models loaded
and checked when the server starts, their batchers, and the limits that hold under abuse (see :class:`Limits`)."""

from __future__ import annotations

import base64
import contextlib
import email.message
import io
import json
import math
import re
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import torch
from PIL import Image, ImageDraw

from ..errors import Busy, ImageReadError, OptionError, RequestError
from ..models import Prediction, RunConfig, Top5Classifier, get_model
from ..settings import DRAFT_MARGIN
from ..transforms import ALLOWED_FORMATS, decode_bytes, decoding_for
from .batching import DynamicBatcher
from .intake import Budget, Intake, Request, error_response
from .limits import Limits

PAGE = (Path(__file__).resolve().parent / "page.html").read_bytes()
# The page is inline; this keeps the browser from fetching anything from anywhere else.
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
PARAMETERS = ("model", "k", "top_k", "explain")  # /predict's query; top_k is k under Hugging Face's name
ROUTES = {
    "/": ("GET", "HEAD"),
    "/models": ("GET", "HEAD"),
    "/health": ("GET", "HEAD"),
    "/favicon.ico": ("GET", "HEAD"),
    "/predict": ("POST",),
}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}
_WARMUP = torch.full((3, 256, 256), 128, dtype=torch.uint8)


@dataclass(frozen=True)
class Job:
    image: torch.Tensor  # upright RGB uint8 [3, H, W]
    k: int
    explain: bool


class ModelPool:
    """The models a server offers, each with one batcher of its own. :meth:`load` loads and checks every one when the
    server starts (those that fail are listed as unavailable, with the reason); without it, each loads on first use.

    ``weights_path``/``categories``: a local weights file (and its class names) for the one model offered."""

    def __init__(
        self,
        names: list[str],
        limits: Limits,
        config: RunConfig | None = None,
        *,
        weights_path: str | None = None,
        categories: str | None = None,
    ):
        if not names:
            raise OptionError("no models to serve: pass at least one name to --models")
        self.names, self.limits, self.config = list(dict.fromkeys(names)), limits, config or RunConfig()
        if (weights_path or categories) and len(self.names) != 1:
            raise OptionError(
                f"weights_path and categories describe one model's weights; {len(self.names)} models are offered "
                f"({', '.join(self.names)}): offer one"
            )
        self.weights_path, self.categories = weights_path, categories
        self.problems: dict[str, str] = {}  # the models that could not be loaded, and why
        self._loaded: dict[str, tuple[Top5Classifier, DynamicBatcher[Job]]] = {}
        self._lock = threading.Lock()

    def load(self, explain_error: Any = str) -> None:
        """Load every model and classify one blank image with it (the weights, the precision and the backend are
        all checked); a model that fails is unavailable, its reason (``explain_error(error)``) in :attr:`problems`."""
        for name in self.names:
            with self._lock:
                try:
                    self._load(name)
                except Exception as error:  # no weights offline, a corrupt file, a backend that cannot run it
                    self.problems[name] = explain_error(error)

    def available(self) -> list[str]:
        return [name for name in self.names if name not in self.problems]

    def describe(self) -> list[dict[str, Any]]:
        """Each model as ``GET /models`` lists it: name, whether it can answer, its weights or why not."""
        listed = []
        for name in self.names:
            entry: dict[str, Any] = {"name": name, "available": name not in self.problems}
            if name in self._loaded:
                model = self._loaded[name][0]
                entry |= {"weights": model.meta["weights"], "classes": len(model.categories)}
            if name in self.problems:
                entry["problem"] = self.problems[name]
            listed.append(entry)
        return listed

    def get(self, name: str) -> tuple[Top5Classifier, DynamicBatcher[Job]]:
        if name not in self.names:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"unknown model {_shown(name)}: choose one of {', '.join(self.names)}"
            )
        with self._lock:  # one load per model, however many requests arrive at once
            if name not in self._loaded and name not in self.problems:
                try:
                    self._load(name)
                except Exception as error:
                    self.problems[name] = str(error)
            if name in self.problems:
                raise RequestError(
                    HTTPStatus.SERVICE_UNAVAILABLE, f"model {name} is unavailable: {self.problems[name]}"
                )
            return self._loaded[name]

    def _load(self, name: str) -> None:
        model = get_model(name, weights_path=self.weights_path, categories=self.categories, device=self.config.device)
        (warmup,) = run_jobs(model, [Job(_WARMUP, 1, False)], self.config)
        if isinstance(warmup, Exception):
            raise warmup
        batcher: DynamicBatcher[Job] = DynamicBatcher(
            lambda jobs: run_jobs(model, jobs, self.config),
            max_batch=self.limits.max_batch,
            max_wait_s=self.limits.max_wait_s,
            max_queue=self.limits.max_queue,
            name=f"batcher-{name}",
        )
        self._loaded[name] = (model, batcher)

    def close(self) -> None:
        with self._lock:
            for _, batcher in self._loaded.values():
                batcher.close()
            self._loaded.clear()


def run_jobs(model: Top5Classifier, jobs: list[Job], config: RunConfig) -> list[dict[str, Any] | Exception]:
    """Classify a batch of jobs through ``predict``: explained ones together (Grad-CAM), the others together.

    Each job gets its own answer or its own error (a :class:`RequestError` naming why): one image that fails
    never fails the others of its batch. When a whole ``predict`` call raises, its jobs are run again one by one,
    so only the one that fails alone gets the error."""
    results: list[dict[str, Any] | Exception] = [{} for _ in jobs]
    for explain in (False, True):
        positions = [number for number, job in enumerate(jobs) if job.explain == explain]
        if not positions:
            continue
        try:
            predictions = _predict_jobs(model, [jobs[p] for p in positions], explain, config)
        except Exception as error:
            if len(positions) == 1:
                results[positions[0]] = error
                continue
            for position in positions:  # which one failed: each alone
                try:
                    (prediction,) = _predict_jobs(model, [jobs[position]], explain, config)
                except Exception as alone:
                    results[position] = alone
                else:
                    results[position] = _answer_or_error(prediction, jobs[position].k, explain)
            continue
        for position, prediction in zip(positions, predictions, strict=True):
            results[position] = _answer_or_error(prediction, jobs[position].k, explain)
    return results


def _predict_jobs(model: Top5Classifier, jobs: list[Job], explain: bool, config: RunConfig) -> list[Prediction]:
    return list(
        model.predict(
            [job.image for job in jobs],
            k=max(job.k for job in jobs),
            explain=explain,
            config=RunConfig.of(config, batch_size=len(jobs), device=None, workers=0),
        )
    )


def _answer_or_error(prediction: Prediction, k: int, explain: bool) -> dict[str, Any] | Exception:
    if prediction.error:  # decoded before queueing: the network failed on this image (non-finite scores, ...)
        return RequestError(
            HTTPStatus.UNPROCESSABLE_ENTITY, f"the model could not classify this image: {prediction.error}"
        )
    try:
        return answer(prediction, k, explain)
    except Exception as error:  # drawing its heatmap: a fault of ours, for this job alone (500)
        return error


def answer(prediction: Prediction, k: int, explain: bool) -> dict[str, Any]:
    """The JSON of one image: its top-k, and when explained its heatmap as PNG data URLs."""
    if prediction.error:
        raise RuntimeError(prediction.error)
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


def _favicon() -> bytes:
    """The page's icon: five bars, longest first, as the top-5 answers show them (16 and 32 px, ICO)."""
    icon = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((0, 0, 31, 31), radius=6, fill=(31, 111, 178, 255))
    for row, width in enumerate((22, 16, 11, 7, 4)):
        draw.rectangle((5, 4 + 5 * row, 5 + width, 6 + 5 * row), fill=(255, 255, 255, 255))
    buffer = io.BytesIO()
    icon.save(buffer, "ICO", sizes=[(16, 16), (32, 32)])
    return buffer.getvalue()


FAVICON = _favicon()


class PredictServer(HTTPServer):
    """The HTTP server: an intake thread reads requests whole (:mod:`.intake`), at most ``max_requests`` worker
    threads answer them, and :meth:`stop` shuts it down gracefully.

    ``allowed_hosts``: names (besides the loopback ones) the ``Host`` header may give, ``--allow-host``.
    """

    def __init__(
        self,
        address: tuple[str, int],
        pool: ModelPool,
        limits: Limits,
        quiet: bool = True,
        allowed_hosts: tuple[str, ...] = (),
    ):
        self.request_queue_size = limits.backlog
        super().__init__(address, Handler)
        self.pool, self.limits, self.quiet = pool, limits, quiet
        self.allowed_hosts = frozenset(name.lower() for name in (*LOOPBACK_NAMES, *allowed_hosts))
        self.uploads = Budget(limits.upload_budget_bytes)
        self.pixels = Budget(limits.pixel_budget)
        self.stopping = False
        self.active = 0  # requests being answered
        self._workers = threading.Condition()
        self.intake = Intake(self._dispatch, self.uploads, limits)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        assert isinstance(host, str)  # bound: getsockname()'s host (typeshed also allows the bytes one may pass)
        return f"http://{host}:{port}/"

    def process_request(self, request: Any, client_address: Any) -> None:
        """A new connection: the intake reads its requests (no thread of its own yet)."""
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body leave at once
        self.intake.add(request, client_address)

    def _dispatch(self, request: Request) -> None:
        with self._workers:
            full = self.active >= self.limits.max_requests
            if not full:
                self.active += 1
        if full:
            request.release_upload()
            reason = f"{self.limits.max_requests} requests are being answered (serve.py --max-requests): retry shortly"
            self.intake.refuse(
                request.sock, error_response(HTTPStatus.SERVICE_UNAVAILABLE, reason, {"Retry-After": "1"})
            )
            return
        threading.Thread(target=self._work, args=(request,), name="serve-worker", daemon=True).start()

    def _work(self, request: Request) -> None:
        keep, leftover = False, b""
        try:
            handler = Handler(cast(Any, request), request.address, self)  # http.server's type says a socket
            keep, leftover = handler.keep_alive, handler.leftover
        except (ConnectionError, TimeoutError):  # the client left before its answer, or stopped reading it
            pass
        except Exception:
            self.handle_error(request.sock, request.address)
        finally:
            request.release_upload()
            with self._workers:
                self.active -= 1
                self._workers.notify_all()
        if keep and not self.stopping:
            self.intake.add(request.sock, request.address, leftover, kept_alive=True)
        else:
            self.intake.close_gently(request.sock)

    def stop(self, timeout: float) -> int:
        """After ``serve_forever`` returned: stop accepting (connections already waiting in the listen queue are
        still read), finish the requests in flight within ``timeout`` seconds, then close. The requests left
        unfinished (0 when all were answered)."""
        self.stopping = True
        self.socket.setblocking(False)
        while True:
            try:
                sock, address = self.socket.accept()
            except OSError:
                break
            self.process_request(sock, address)
        self.socket.close()
        self.intake.stop_reading()
        self.intake.sync()  # the connections from the listen queue are held before counting what is on its way
        deadline = time.monotonic() + timeout
        with self._workers:
            while self.active or self.intake.receiving():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._workers.wait(min(left, 0.05))
            unfinished = self.active + self.intake.receiving()
        self.intake.close(self.limits.linger_s)
        self.pool.close()
        return unfinished

    def server_close(self) -> None:
        super().server_close()
        self.intake.close(0)
        self.pool.close()

    def host_allowed(self, host: str) -> bool:
        """``Host: name[:port]`` names this server: a loopback name, the bound address, or an ``--allow-host``."""
        host = host.strip().lower()
        if host.startswith("["):  # an IPv6 address: [::1]:8080
            name, _, port = host.partition("]")
            name, port = name + "]", port.removeprefix(":")
        else:
            name, _, port = host.partition(":")
        if port and not port.isdigit():
            return False
        return name in self.allowed_hosts or name == str(self.server_address[0]).lower()


class Handler(BaseHTTPRequestHandler):
    """Answers one request the intake read whole (``request`` is an :class:`~.intake.Request`)."""

    server: PredictServer
    request: Request
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connection
    server_version = "top5hub-serve"

    def setup(self) -> None:
        self.connection = self.request.sock
        self.reader = _Reader(self.request.data)
        self.rfile = self.reader
        self.request.data = b""
        self.wfile = _Writer(self.connection, self.server.limits.write_timeout_s)
        self.keep_alive, self.leftover, self.body_read = False, b"", False

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        headers = getattr(self, "headers", None)  # none when the request line or the headers were refused
        length = headers.get("Content-Length", "0") if headers else "0"
        if not self.close_connection and not self.body_read and length != "0":  # a body nobody read (GET with one)
            if length.isdigit() and int(length) <= self.server.limits.max_upload_bytes:
                self.reader.read(int(length))  # the intake read it whole: skip it, the next request follows
            else:
                self.close_connection = True
        self.keep_alive = not self.close_connection
        self.leftover = self.reader.rest()

    def finish(self) -> None:  # the connection goes back to the intake, not closed here
        pass

    def handle_expect_100(self) -> bool:  # the intake sent "100 Continue" when it wanted the body
        return True

    def do_GET(self) -> None:
        try:
            self._check_host_and_origin()
            path = urlsplit(self.path).path
            allowed = ROUTES.get(path)
            if allowed is None:
                raise RequestError(
                    HTTPStatus.NOT_FOUND, f"no page {_shown(path)}: GET / for the page, POST /predict for the API"
                )
            if self.command == "OPTIONS":
                self._send(HTTPStatus.NO_CONTENT, b"", "text/plain", {"Allow": ", ".join(allowed)})
                return
            if self.command not in allowed:
                raise RequestError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"{self.command} {path} is not served: use {' or '.join(allowed)}",
                    {"Allow": ", ".join(allowed)},
                )
            if path == "/predict":
                self._json(HTTPStatus.OK, self._predict())
            elif path == "/":
                self._send(HTTPStatus.OK, PAGE, "text/html; charset=utf-8", {"Content-Security-Policy": PAGE_POLICY})
            elif path == "/favicon.ico":
                self._send(HTTPStatus.OK, FAVICON, "image/x-icon", {"Cache-Control": "max-age=86400"})
            elif path == "/models":
                self._json(HTTPStatus.OK, self._models())
            else:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE if self.server.stopping else HTTPStatus.OK, self._health())
        except (RequestError, Busy) as error:
            self.close_connection = True  # the body may be unread: this connection cannot carry another request
            if isinstance(error, RequestError):
                self._json(error.status, {"error": error.reason}, error.headers)
            else:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(error)}, {"Retry-After": "1"})
        except Exception as error:  # a client always gets an answer, never a dropped connection
            self.close_connection = True
            self.log_error("predict failed: %r", error)
            self._json(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"the server failed: {type(error).__name__}: {error}"}
            )

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _check_host_and_origin(self) -> None:
        """Only requests for this server (DNS rebinding gives another ``Host``), and only from its own page or from
        no page at all (a page elsewhere posting here gives another ``Origin``)."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            raise RequestError(HTTPStatus.BAD_REQUEST, "more than one Host header")
        if not hosts:
            if self.request_version != "HTTP/1.0":
                raise RequestError(HTTPStatus.BAD_REQUEST, "no Host header: HTTP/1.1 requests name their host")
        elif not self.server.host_allowed(hosts[0]):
            raise RequestError(
                HTTPStatus.FORBIDDEN,
                f"Host {_shown(hosts[0])} is not a name of this server (it answers to "
                f"{', '.join(sorted(self.server.allowed_hosts))}): start it with --allow-host NAME to add one",
            )
        if self.command in ("GET", "HEAD", "OPTIONS"):
            return
        origin = self.headers.get("Origin")
        if origin is not None:
            own = {f"{scheme}://{hosts[0]}".lower() for scheme in ("http", "https")} if hosts else set()
            if origin.lower() not in own:
                raise RequestError(
                    HTTPStatus.FORBIDDEN,
                    f"a request from the page at {_shown(origin)} is refused: use this server's own page, or a "
                    "client that is not a browser",
                )
        elif self.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            raise RequestError(HTTPStatus.FORBIDDEN, "a cross-site request is refused: use this server's own page")

    def _models(self) -> dict[str, Any]:
        limits, available = self.server.limits, self.server.pool.available()
        return {
            "models": self.server.pool.describe(),
            "default": available[0] if available else None,
            "max_upload_bytes": limits.max_upload_bytes,
            "max_image_pixels": limits.max_image_pixels,
        }

    def _health(self) -> dict[str, Any]:
        pool = self.server.pool
        return {
            "status": "stopping" if self.server.stopping else "ok",
            "models": {name: "unavailable" if name in pool.problems else "ready" for name in pool.names},
            "requests_in_flight": self.server.active,
            "connections": self.server.intake.open_connections(),
        }

    def _query(self) -> tuple[str, int, bool]:
        """``model``, ``k`` (or ``top_k``) and ``explain``, every one checked before the body is looked at."""
        query = urlsplit(self.path).query
        try:
            pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=2 * len(PARAMETERS))
        except ValueError:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"too many query parameters: /predict takes {', '.join(PARAMETERS)}"
            ) from None
        given: dict[str, str] = {}
        for key, value in pairs:
            if key not in PARAMETERS:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST,
                    f"unknown parameter {_shown(key)}: /predict takes model, k (or top_k) and explain",
                )
            if key in given:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"{key} given more than once: give it once")
            given[key] = value
        if "k" in given and "top_k" in given:
            raise RequestError(HTTPStatus.BAD_REQUEST, "k and top_k are the same parameter: give one of them")
        k_name = "top_k" if "top_k" in given else "k"
        default = self.server.pool.available()[:1] or self.server.pool.names[:1]
        return given.get("model", default[0]), _k(k_name, given.get(k_name, "5")), _flag(given.get("explain", "0"))

    def _predict(self) -> dict[str, Any]:
        """Read, decode and classify the upload. ``time_ms`` counts from the body's first byte to the answer
        (reading, decoding, waiting for a batch, inference), not a model's one-time loading."""
        started = time.perf_counter()
        name, k, explain = self._query()
        model, batcher = self.server.pool.get(name)  # unknown model: 400 before the body is read
        limits = self.server.limits
        data = _image_bytes(self._body(), self.headers.get("Content-Type", ""), limits)
        side = model.meta.get("resize_size")
        width, height = decoded_size(data, side) or (limits.max_image_pixels, 1)  # unreadable: decoding says why
        pixels = width * height
        if pixels > limits.max_image_pixels:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the image decodes to {width}x{height} = {pixels} pixels, over this server's limit of "
                f"{limits.max_image_pixels} a request (serve.py --max-image-mp; JPEGs count at their reduced "
                "decoding scale, other formats at full size): send a smaller image or a JPEG",
            )
        if not self.server.pixels.take(pixels, limits.budget_wait_s):
            raise RequestError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"the images in flight already take this server's budget of {limits.pixel_budget} decoded pixels "
                "(serve.py --pixel-budget-mp): retry shortly",
                {"Retry-After": "1"},
            )
        try:
            try:
                with decoding_for(side):  # a large JPEG decodes at a reduced scale, as predict decodes it
                    image = decode_bytes(data, "the uploaded image", limits.max_pixels)
            except ImageReadError as error:
                raise RequestError(HTTPStatus.BAD_REQUEST, str(error)) from None
            del data
            self.request.release_upload()
            k = min(k, len(model.categories))  # a fine-tuned model with 3 classes answers its 3
            (result, batch_size) = batcher.submit(Job(image, k, explain)).result(timeout=120)
            del image
        finally:
            self.server.pixels.give(pixels)
        return {
            "model": name,
            "weights": model.meta["weights"],
            **result,
            "time_ms": round(1000 * (time.perf_counter() - started), 2),
            "batch_size": batch_size,
        }

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the image with a Content-Length header, not chunked")
        lengths = set(self.headers.get_all("Content-Length") or [])
        if not lengths:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the image with a Content-Length header")
        (length,) = lengths if len(lengths) == 1 else (None,)
        if length is None or not length.isdigit() or len(length) > 15:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length {_shown(', '.join(lengths))} is not a number")
        size, limit = int(length), self.server.limits.max_upload_bytes
        if size > limit:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the upload is {size} bytes, over the limit of {limit} bytes (serve.py --max-upload-mb)",
            )
        if size <= 0:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is empty: send the image's bytes")
        body = self.rfile.read(size)
        if len(body) < size:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of {size} bytes")
        self.reader.compact()
        self.body_read = True
        return body

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, too many headers...) as JSON like ours."""
        self.close_connection = True
        reason = message or HTTPStatus(code).phrase
        self._json(HTTPStatus(code), {"error": reason + (f": {explain}" if explain else "")})

    def _json(self, status: HTTPStatus, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        if self.server.stopping:
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


class _Reader(io.BufferedIOBase):
    """A request's bytes as http.server reads them (``readline``, ``read``); what is left is the next request."""

    def __init__(self, data: bytes):
        super().__init__()
        self._data, self._at = data, 0

    def readable(self) -> bool:
        return True

    def readline(self, size: int | None = -1, /) -> bytes:
        end = self._data.find(b"\n", self._at)
        end = len(self._data) if end < 0 else end + 1
        if size is not None and size >= 0:
            end = min(end, self._at + size)
        line, self._at = self._data[self._at : end], end
        return line

    def read(self, size: int | None = -1, /) -> bytes:
        end = len(self._data) if size is None or size < 0 else min(len(self._data), self._at + size)
        chunk, self._at = self._data[self._at : end], end
        return chunk

    def compact(self) -> None:
        """Forget what was read (a large body need not stay in memory twice)."""
        self._data, self._at = self._data[self._at :], 0

    def rest(self) -> bytes:
        return self._data[self._at :]


class _Writer(io.BufferedIOBase):
    """Writes whole answers to the socket, each within ``timeout`` seconds (a client that does not read loses it)."""

    def __init__(self, sock: socket.socket, timeout: float):
        self._sock, self._timeout = sock, timeout

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        self._sock.settimeout(self._timeout)
        self._sock.sendall(data)
        return memoryview(data).nbytes


def decoded_size(data: bytes, side: int | None) -> tuple[int, int] | None:
    """The (width, height) ``data`` decodes to, read from its header: a large JPEG at the reduced scale
    :func:`~top5hub.transforms.decoding_for` decodes it at (Pillow's draft, the same rule). None when the header
    cannot be read (decoding then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
                width, height = image.size
                margin = DRAFT_MARGIN.get()
                if image.format == "JPEG" and side and margin and min(width, height) >= 2 * margin * side:
                    factor = margin * side / min(width, height)
                    mode = image.mode if image.mode in ("L", "RGB") else None
                    image.draft(mode, (math.ceil(width * factor), math.ceil(height * factor)))
                return image.size
    except Exception:
        return None


def _shown(text: str, limit: int = 40) -> str:
    """A client's text in a message: quoted, and cut short."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def _k(name: str, text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= 1000:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{name} must be an integer from 1 to 1000, got {_shown(text)}")
    return int(text)


def _flag(text: str) -> bool:
    if text.lower() not in _TRUE | _FALSE:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"explain must be 1/true or 0/false, got {_shown(text)}")
    return text.lower() in _TRUE


def _image_bytes(body: bytes, content_type: str, limits: Limits) -> bytes:
    """The image in a request body: the body itself, or the file of a multipart/form-data body (the first part with
    a file name, else the first part). At most ``limits.max_parts`` parts, each with headers of at most
    ``limits.max_part_header_bytes``: parsing costs time in proportion to the body, whatever it holds."""
    if not content_type.lower().startswith("multipart/form-data"):
        return body
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70:
        raise RequestError(HTTPStatus.BAD_REQUEST, "multipart/form-data without a boundary of 1 to 70 characters")
    delimiter = b"\r\n--" + boundary.encode("latin-1", "replace")
    text = b"\r\n" + body
    if text.count(delimiter) > limits.max_parts + 1:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"the multipart body has more than {limits.max_parts} parts: send the image as one file field",
        )
    pieces = text.split(delimiter)
    parts: list[tuple[bool, bytes]] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):  # the closing delimiter
            break
        line_end = piece.find(b"\r\n")
        if line_end < 0:
            break
        piece = piece[line_end + 2 :]
        if piece.startswith(b"\r\n"):
            head, content = b"", piece[2:]
        else:
            end = piece.find(b"\r\n\r\n", 0, limits.max_part_header_bytes + 4)
            if end < 0:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST,
                    f"a multipart part's headers are over {limits.max_part_header_bytes} bytes or never end",
                )
            head, content = piece[:end], piece[end + 4 :]
        lines = head.split(b"\r\n")
        if len(lines) > limits.max_parts:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"a multipart part has more than {limits.max_parts} headers")
        has_file = any(
            line.lower().startswith(b"content-disposition:") and re.search(rb";\s*filename\*?=", line, re.I)
            for line in lines
        )
        parts.append((has_file, content))
    if not parts:
        raise RequestError(HTTPStatus.BAD_REQUEST, "multipart/form-data body without parts: check the boundary")
    data = next((content for has_file, content in parts if has_file), parts[0][1])
    if not data:
        raise RequestError(HTTPStatus.BAD_REQUEST, "the multipart body has no file: send the image as a file field")
    return data
