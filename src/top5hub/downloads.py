"""HTTP(S) downloads with a total deadline, a size cap, safe redirects and no secret in any message.

One path for image URLs (``predict``) and weights files (``models``): a server that sends a byte a
second (headers or body) cannot hold a download past its deadline, a redirect can lead only to http(s) on the default
port or the original one, at most :data:`MAX_REDIRECTS` times, and ``user:secret@`` in a URL becomes
a Basic authorisation header and is shown as ``user:***@``.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import re
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .errors import DownloadError
from .settings import DOWNLOAD_DEADLINE, DOWNLOAD_TIMEOUT

MAX_REDIRECTS = 5
# Without a known size, no download is accepted beyond this many bytes.
DOWNLOAD_MAX_BYTES = 4 * 2**30
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,64})\.")
_CHUNK = 1 << 16
_DEFAULT_PORTS = {"http": 80, "https": 443}

logger = logging.getLogger(__name__)


def redact(url: str) -> str:
    """``url`` with any password in it replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def quoted(url: str) -> str:
    """``url`` as ASCII: spaces and other characters %-escaped (existing escapes kept), the host in IDNA."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    netloc = host if ":" not in host else f"[{host}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    safe = "/%:@!$&'()*+,;=~"
    return urllib.parse.urlunsplit(
        (
            parts.scheme,
            netloc,
            urllib.parse.quote(parts.path, safe=safe),
            urllib.parse.quote(parts.query, safe=safe + "?"),
            urllib.parse.quote(parts.fragment, safe=safe + "?"),
        )
    )


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow only http(s) redirects to the default port or the original one, at most MAX_REDIRECTS."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        target = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl))
        origin = urllib.parse.urlsplit(req.full_url)
        port = target.port or _DEFAULT_PORTS.get(target.scheme)
        downgrade = origin.scheme == "https" and target.scheme == "http"
        if (
            downgrade
            or target.scheme not in _DEFAULT_PORTS
            or port not in (_DEFAULT_PORTS[target.scheme], origin.port)
        ):
            raise DownloadError(
                f"refused a redirect from {redact(req.full_url)} to {redact(target.geturl())}: only http(s) on the "
                "default port or the original one is followed, never from https down to http"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Watchdog:
    """Shuts down every socket of one download when its deadline passes: connecting, the headers and the
    body are all bounded, however slowly a server drips them."""

    def __init__(self, seconds: float):
        self.sockets: list[socket.socket] = []
        self.fired = False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        for sock in self.sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def opener(self) -> urllib.request.OpenerDirector:
        watchdog = self

        class Watched(http.client.HTTPConnection):
            def connect(self) -> None:
                super().connect()
                watchdog.sockets.append(self.sock)

        class WatchedTLS(http.client.HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                watchdog.sockets.append(self.sock)

        class Plain(urllib.request.HTTPHandler):
            def http_open(self, req: Any) -> Any:
                return self.do_open(Watched, req)

        class Secure(urllib.request.HTTPSHandler):
            _context: ssl.SSLContext | None  # set by HTTPSHandler.__init__; typeshed leaves the attribute out

            def https_open(self, req: Any) -> Any:
                return self.do_open(WatchedTLS, req, context=self._context)

        return urllib.request.build_opener(Plain, Secure, _SafeRedirects)


@contextmanager
def open_url(url: str, timeout: float, deadline: float | None = None) -> Iterator[Any]:
    """The response to GET ``url`` (quoted, credentials as a header); HTTP errors raise ``urllib.error.HTTPError``.

    ``timeout``: seconds the connection may stay silent; ``deadline`` (a ``time.monotonic()`` value, default
    ``timeout`` from now): when everything, from connecting to the last byte read inside the block, must be done.
    """
    parts = urllib.parse.urlsplit(url)
    authorization = None
    if parts.username is not None:
        token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(token.encode()).decode("ascii")
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    ends = time.monotonic() + timeout if deadline is None else deadline
    watchdog = _Watchdog(max(ends - time.monotonic(), 0.0))
    watchdog.timer.start()
    try:
        request = urllib.request.Request(quoted(url), headers={"User-Agent": "top5-hub"})
        if authorization:  # for this host only: a redirect never carries the credentials elsewhere
            request.add_unredirected_header("Authorization", authorization)
        with watchdog.opener().open(request, timeout=timeout) as response:
            yield response
    except (OSError, http.client.HTTPException) as error:
        if watchdog.fired and not isinstance(error, (DownloadError, urllib.error.HTTPError)):
            raise DownloadError(f"{redact(url)}: timed out: not complete within the deadline") from None
        raise
    finally:
        watchdog.timer.cancel()


def read_body(
    response: Any,
    url: str,
    deadline: float,
    max_bytes: int,
    on_chunk: Callable[[bytes], object],
    stall: float | None = None,
) -> int:
    """Pass the body to ``on_chunk`` piece by piece; raise :class:`DownloadError` past ``deadline`` (a
    ``time.monotonic()`` value), past ``max_bytes``, or when no byte came for ``stall`` seconds (when given).
    Returns the number of bytes read."""
    total = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DownloadError(f"{redact(url)}: timed out: not complete within the deadline after {total} bytes")
        _set_timeout(response, remaining if stall is None else min(stall, remaining))
        try:
            chunk = response.read1(_CHUNK)
        except TimeoutError:
            if stall is not None and time.monotonic() < deadline:
                raise DownloadError(f"{redact(url)}: stalled: no data for {stall:g} s after {total} bytes") from None
            raise DownloadError(f"{redact(url)}: timed out: not complete within the deadline") from None
        if not chunk:
            if time.monotonic() >= deadline:  # the watchdog shut the socket
                raise DownloadError(f"{redact(url)}: timed out: not complete within the deadline")
            return total
        total += len(chunk)
        if total > max_bytes:
            raise DownloadError(f"{redact(url)}: larger than the {max_bytes} byte cap")
        on_chunk(chunk)


def _set_timeout(response: Any, seconds: float) -> None:
    """Each wait on the socket ends by the deadline, not a fixed per-read timeout."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.01))


def download(
    url: str,
    destination: Path,
    progress: bool = False,
    timeout: float | None = None,
    deadline: float | None = None,
    max_bytes: int = DOWNLOAD_MAX_BYTES,
    sha256: str | None = None,
) -> None:
    """Download to a private temporary file, verify, then atomically rename into place.

    Readers never see a partial file, and concurrent downloads of the same file each rename a
    complete copy. ``timeout``: seconds the connection may stay silent; ``deadline``: seconds for the
    whole file (a server sending a byte a second cannot hold it longer); ``max_bytes``: the size cap.
    Verified against ``sha256`` when given, else the SHA-256 prefix in the file name (torch's convention).
    """
    timeout = DOWNLOAD_TIMEOUT.get() if timeout is None else timeout
    ends = time.monotonic() + (DOWNLOAD_DEADLINE.get() if deadline is None else deadline)
    expected = sha256 or expected_hash_prefix(destination.name)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
    digest = hashlib.sha256()
    logger.debug("downloading %s to %s", redact(url), destination)
    try:
        # a private new file: O_EXCL and O_NOFOLLOW, so nothing planted at its name is written through
        new = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        with open_url(url, timeout, ends) as response, open(os.open(partial, new, 0o644), "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            if total > max_bytes:
                raise DownloadError(
                    f"{redact(url)}: {total} bytes is larger than the {max_bytes} byte cap for this file"
                )
            written = 0

            def keep(chunk: bytes) -> None:
                nonlocal written
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                if progress and total:
                    print(f"\rdownloading {destination.name}: {100 * written // total}%", end="", file=sys.stderr)

            try:
                read_body(response, url, ends, max_bytes, keep, stall=timeout)
            except http.client.HTTPException as error:  # e.g. IncompleteRead: the server closed mid-file
                raise OSError(f"the download broke off: {error!r}") from None
            if progress and total:
                print(file=sys.stderr)
        if total and written != total:
            raise OSError(f"connection closed after {written} of {total} bytes")
        if expected and not digest.hexdigest().startswith(expected):
            where = "the one expected" if sha256 else "the one in the file name"
            raise ValueError(f"SHA-256 {digest.hexdigest()[: len(expected)]} does not match {expected}, {where}")
        os.replace(partial, destination)
        logger.debug("downloaded %s (%d bytes)", destination.name, written)
    finally:
        partial.unlink(missing_ok=True)


def expected_hash_prefix(filename: str) -> str | None:
    """The SHA-256 prefix torch puts in a weights file name (``resnet50-11ad3fa6.pth``), or None."""
    match = _HASH_IN_NAME.search(filename)
    return match.group(1) if match else None
