"""Connections before and between their requests: one thread reads every request whole, with deadlines.

serve.py's worker threads (``--max-requests``) only ever run complete requests. The intake, one thread with a
selector, holds every open connection: it reads a request's head (request line and headers) within
``header_timeout_s``, then its body (``Content-Length``, at most the upload limit) within ``body_timeout_s`` and
never silent for ``header_timeout_s``, and only then hands the whole request to a worker. Between a connection's
requests (keep-alive) it holds the connection again. A slow or stalled client therefore costs an open socket and
the bytes it declared (counted against the upload budget), never a worker; past its deadline it gets 408.

Every refusal here (408, 431, 503 when full) is a complete HTTP answer followed by a lingering close: the
intake stops writing, reads and drops what the client still sends for up to ``linger_s``, then closes. Closing
a socket with unread data would reset the connection and could destroy the answer before the client reads it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

HEAD_LIMIT = 64 * 1024  # request line and headers together; more is 431
_CHUNK = 256 * 1024
_OVERFLOW = 128  # connections beyond max_connections that still get a 503 rather than an immediate close


logger = logging.getLogger(__name__)


def error_response(status: HTTPStatus, reason: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete ``Connection: close`` HTTP answer whose JSON body is ``{"error": reason}``."""
    body = json.dumps({"error": reason}).encode()
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        "Connection: close",
        *(f"{key}: {value}" for key, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Budget:
    """An amount (bytes, pixels) the requests in flight share: each takes its part, and gives it back when done."""

    def __init__(self, total: int):
        self.total, self.used = total, 0
        self._condition = threading.Condition()

    def take(self, amount: int, timeout: float = 0) -> bool:
        """Take ``amount``, waiting at most ``timeout`` seconds for others to give back; whether it was taken."""
        if amount > self.total:
            return False
        deadline = time.monotonic() + timeout
        with self._condition:
            while self.used + amount > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(left)
            self.used += amount
            return True

    def give(self, amount: int) -> None:
        if amount:
            with self._condition:
                self.used -= amount
                self._condition.notify_all()


@dataclass(eq=False)
class Request:
    """One request the intake read whole: its bytes (head, body, and anything the client sent after them) and its
    connection. ``reserved``: the upload budget its body holds, given back by :meth:`release_upload`."""

    sock: socket.socket
    address: Any
    data: bytes
    reserved: int
    uploads: Budget

    def release_upload(self) -> None:
        self.uploads.give(self.reserved)
        self.reserved = 0


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    address: Any
    buffer: bytearray = field(default_factory=bytearray)
    phase: str = "idle"  # idle (nothing of a request yet), head, body, closing
    deadline: float = math.inf
    quiet_until: float = math.inf  # body: the latest the next bytes may come
    need: int = 0  # body: the bytes (head included) that make the request whole
    reserved: int = 0
    served: int = 0  # requests answered on this connection before


class Intake:
    """The thread that holds open connections and reads their requests (see the module's docstring).

    ``dispatch(request)`` is called from the intake thread with each complete request; it must not block. Every
    method may be called from any thread: the work is handed to the intake thread.
    """

    def __init__(self, dispatch: Callable[[Request], None], uploads: Budget, limits: Any):
        self.dispatch, self.uploads, self.limits = dispatch, uploads, limits
        self._selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()
        for end in (self._wake_in, self._wake_out):
            end.setblocking(False)
        self._selector.register(self._wake_in, selectors.EVENT_READ, None)
        self._connections: set[_Connection] = set()
        self._pending: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stopping = False  # no new requests on kept-alive connections
        self._closing_at: float | None = None  # close(): the loop ends when nothing lingers, or at this time
        self._thread = threading.Thread(target=self._loop, name="serve-intake", daemon=True)
        self._thread.start()

    # From any thread.

    def add(self, sock: socket.socket, address: Any, buffered: bytes = b"", kept_alive: bool = False) -> None:
        """Hold ``sock`` and read its next request (``buffered``: bytes of it already received)."""
        self._call(lambda: self._add(sock, address, buffered, kept_alive))

    def refuse(self, sock: socket.socket, response: bytes) -> None:
        """Send ``response`` (a complete answer), then close gently."""
        self._call(lambda: self._close_after(_Connection(sock, None), response))

    def close_gently(self, sock: socket.socket) -> None:
        """Stop writing, drop what the client still sends for a moment, then close (no reset)."""
        self._call(lambda: self._close_after(_Connection(sock, None), b""))

    def stop_reading(self) -> None:
        """Shutting down: close connections between requests; those receiving a request still finish it."""
        self._call(self._stop_reading)

    def receiving(self) -> int:
        """Connections whose request is on its way: part of one received, or none yet on a new connection (its
        first request has ``header_timeout_s`` to come). Kept-alive connections between requests do not count."""
        return sum(
            1
            for connection in list(self._connections)
            if connection.phase in ("head", "body") or (connection.phase == "idle" and not connection.served)
        )

    def sync(self, timeout: float = 5) -> None:
        """Wait until the intake thread has done what was asked of it so far."""
        done = threading.Event()
        self._call(done.set)
        done.wait(timeout)

    def open_connections(self) -> int:
        return len(self._connections)

    def close(self, timeout: float) -> None:
        """End the thread once the lingering closes are done (at most ``timeout`` s), closing whatever is left."""
        self._call(lambda: setattr(self, "_closing_at", time.monotonic() + timeout))
        self._thread.join(timeout + 5)

    def _call(self, action: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append(action)
        with contextlib.suppress(OSError):  # the pipe is full (the thread wakes anyway) or the thread is gone
            self._wake_out.send(b"\0")

    # On the intake thread.

    def _loop(self) -> None:
        try:
            while True:
                now = time.monotonic()
                soonest = min((c.deadline for c in self._connections), default=math.inf)
                soonest = min(soonest, min((c.quiet_until for c in self._connections), default=math.inf))
                for key, _ in self._selector.select(min(max(soonest - now, 0.0), 0.5)):
                    if key.data is None:
                        self._drain_wake()
                    else:
                        try:
                            self._readable(key.data)
                        except Exception:  # a fault of ours with one connection: drop it, keep serving the others
                            self._failed(key.data)
                with self._lock:
                    actions, self._pending = self._pending, []
                for action in actions:
                    try:
                        action()
                    except Exception:
                        logger.warning("serve intake: an action failed; the intake goes on", exc_info=True)
                self._expire(time.monotonic())
                if self._closing_at is not None and (not self._connections or time.monotonic() >= self._closing_at):
                    return
        finally:
            for connection in list(self._connections):
                self._drop(connection)
            self._selector.close()
            self._wake_in.close()
            self._wake_out.close()

    def _failed(self, connection: _Connection) -> None:
        """An unexpected error while handling ``connection``: log it and drop that connection alone."""
        logger.warning(
            "serve intake: dropping the connection from %s after an error", connection.address, exc_info=True
        )
        with contextlib.suppress(Exception):
            self._drop(connection)

    def _drain_wake(self) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except OSError:
            pass

    def _add(self, sock: socket.socket, address: Any, buffered: bytes, kept_alive: bool) -> None:
        if self._closing_at is not None:
            sock.close()
            return
        if kept_alive and self._stopping:
            self._close_after(_Connection(sock, address), b"")
            return
        connection = _Connection(sock, address, bytearray(buffered), served=int(kept_alive))
        if len(self._connections) >= self.limits.max_connections:
            if len(self._connections) >= self.limits.max_connections + _OVERFLOW:
                sock.close()
                return
            reason = f"{self.limits.max_connections} connections are open: retry shortly"
            self._close_after(connection, error_response(HTTPStatus.SERVICE_UNAVAILABLE, reason, {"Retry-After": "1"}))
            return
        try:
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, connection)
        except (OSError, ValueError):  # the client is already gone
            sock.close()
            return
        self._connections.add(connection)
        wait = self.limits.keepalive_timeout_s if kept_alive else self.limits.header_timeout_s
        connection.deadline = time.monotonic() + wait
        try:
            self._advance(connection)  # a pipelined request may be whole already
        except Exception:
            self._failed(connection)

    def _readable(self, connection: _Connection) -> None:
        try:
            chunk = connection.sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(connection)
            return
        if connection.phase == "closing":
            if not chunk:  # the client has read the answer and closed: done
                self._drop(connection)
            return
        if not chunk:  # the client went away before its request was whole
            self._drop(connection)
            return
        connection.buffer += chunk
        now = time.monotonic()
        if connection.phase == "body":
            connection.quiet_until = now + self.limits.header_timeout_s
        self._advance(connection)

    def _advance(self, connection: _Connection) -> None:
        if connection.phase in ("idle", "head"):
            while connection.buffer[:2] == b"\r\n" or connection.buffer[:1] == b"\n":  # blank lines before a request
                del connection.buffer[: 2 if connection.buffer[:1] == b"\r" else 1]
            if not connection.buffer:
                return
            if connection.phase == "idle":
                connection.phase = "head"
                if connection.served:  # a kept-alive connection starts a request: the head's deadline counts now
                    connection.deadline = time.monotonic() + self.limits.header_timeout_s
            end = _head_end(connection.buffer)
            if end < 0:
                if len(connection.buffer) > HEAD_LIMIT:
                    reason = f"the request line and headers are over {HEAD_LIMIT} bytes"
                    self._refuse(connection, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, reason)
                return
            self._start_body(connection, end)
            if connection.phase != "body":
                return
        if connection.phase == "body" and len(connection.buffer) >= connection.need:
            self._selector.unregister(connection.sock)
            self._connections.discard(connection)
            connection.sock.setblocking(True)
            self.dispatch(
                Request(
                    connection.sock, connection.address, bytes(connection.buffer), connection.reserved, self.uploads
                )
            )

    def _start_body(self, connection: _Connection, head_end: int) -> None:
        """The head is whole: how many body bytes follow; the upload budget for them, or a 503."""
        length, expect = _body_length(bytes(connection.buffer[:head_end]))
        connection.phase, connection.need = "body", head_end
        if length is None or length > self.limits.max_upload_bytes:
            return  # no body, or one the worker refuses (411, 400, 413) without reading it
        if not self.uploads.take(length):
            megabytes = self.uploads.total / 2**20
            reason = f"uploads of {megabytes:.0f} MB are already arriving or waiting: retry shortly"
            self._refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE, reason, {"Retry-After": "1"})
            return
        now = time.monotonic()
        connection.reserved, connection.need = length, head_end + length
        connection.deadline = now + self.limits.body_timeout_s
        connection.quiet_until = now + self.limits.header_timeout_s
        if expect and len(connection.buffer) < connection.need:
            _send_some(connection.sock, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _expire(self, now: float) -> None:
        for connection in list(self._connections):
            try:
                self._expire_one(connection, now)
            except Exception:
                self._failed(connection)

    def _expire_one(self, connection: _Connection, now: float) -> None:
        if connection.phase == "closing":
            if now >= connection.deadline:
                self._drop(connection)
        elif connection.phase == "idle":
            if now >= connection.deadline:  # nothing was sent: close quietly, as for an idle keep-alive
                self._drop(connection)
        elif connection.phase == "head":
            if now >= connection.deadline:
                reason = (
                    f"the request line and headers did not arrive within {self.limits.header_timeout_s:g} s: "
                    "send them at once"
                )
                self._refuse(connection, HTTPStatus.REQUEST_TIMEOUT, reason)
        elif now >= connection.deadline or now >= connection.quiet_until:
            got = len(connection.buffer) - (connection.need - connection.reserved)
            if now >= connection.quiet_until:
                why = f"nothing came for {self.limits.header_timeout_s:g} s"
            else:
                why = f"the body must arrive within {self.limits.body_timeout_s:g} s"
            reason = f"the upload stalled: {got} of {connection.reserved} bytes arrived ({why})"
            self._refuse(connection, HTTPStatus.REQUEST_TIMEOUT, reason)

    def _stop_reading(self) -> None:
        self._stopping = True
        for connection in list(self._connections):
            if connection.phase == "idle" and connection.served:
                self._drop(connection)

    def _refuse(
        self, connection: _Connection, status: HTTPStatus, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        self._close_after(connection, error_response(status, reason, headers))

    def _close_after(self, connection: _Connection, response: bytes) -> None:
        """Send ``response``, stop writing, then drop what comes for ``linger_s`` or until the client closes."""
        self._release(connection)
        if connection in self._connections:
            self._selector.unregister(connection.sock)
            self._connections.discard(connection)
        sock = connection.sock
        try:
            sock.setblocking(False)
            if response:
                _send_some(sock, response)
            sock.shutdown(socket.SHUT_WR)
            closing = _Connection(sock, connection.address, phase="closing")
            closing.deadline = time.monotonic() + self.limits.linger_s
            self._selector.register(sock, selectors.EVENT_READ, closing)
        except (OSError, ValueError):
            sock.close()
            return
        self._connections.add(closing)

    def _drop(self, connection: _Connection) -> None:
        self._release(connection)
        if connection in self._connections:
            self._connections.discard(connection)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(connection.sock)
        connection.sock.close()

    def _release(self, connection: _Connection) -> None:
        self.uploads.give(connection.reserved)
        connection.reserved = 0


def _head_end(buffer: bytearray) -> int:
    """Where the request's head ends (after its blank line), or -1 while it is incomplete."""
    ends = [index + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (index := buffer.find(mark)) >= 0]
    return min(ends) if ends else -1


def _body_length(head: bytes) -> tuple[int | None, bool]:
    """The body's length by ``Content-Length`` (None: no body to read here: none, chunked, or a malformed length
    the worker answers), and whether the client expects ``100 Continue``."""
    lengths: set[bytes] = set()
    chunked = expect = False
    for line in head.split(b"\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            lengths.add(value)
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
    if chunked or len(lengths) != 1:
        return None, False
    (value,) = lengths
    if not value.isdigit() or len(value) > 15:
        return None, False
    return (int(value) or None), expect


def _send_some(sock: socket.socket, data: bytes) -> None:
    """Send what the socket takes now (a short answer always fits an empty send buffer)."""
    with contextlib.suppress(OSError):
        sock.send(data)
