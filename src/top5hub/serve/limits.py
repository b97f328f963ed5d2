"""What the server's requests may cost (:class:`Limits`): without torch, so ``serve.py --help`` builds its flags
from these fields at once. A field with a ``flag`` in its metadata is a ``serve.py`` flag, in the flag's unit
(``scale``: the field's value is the flag's times it), with the help text given there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..settings import MAX_PIXELS


def _flag(default: float, flag: str, help: str, scale: float = 1) -> Any:
    """A field that is also ``serve.py``'s ``flag``, whose value is the field's divided by ``scale``."""
    return field(default=default, metadata={"flag": flag, "help": help, "scale": scale})


@dataclass(frozen=True)
class Limits:
    """What one request, and all of them together, may cost; every one answered by a status naming the limit."""

    max_upload_bytes: int = _flag(20 * 2**20, "--max-upload-mb", "largest upload accepted, in MB", scale=2**20)
    max_pixels: int = field(default_factory=MAX_PIXELS.get)  # the library's check of an image's stated size
    max_image_pixels: int = _flag(  # decoded pixels per request (a JPEG counts at its reduced decoding scale)
        25_000_000,
        "--max-image-mp",
        "most megapixels one image may decode to (JPEGs at their reduced decoding scale)",
        scale=1e6,
    )
    pixel_budget: int = _flag(  # decoded pixels of every request in flight together (about 3 bytes each)
        100_000_000,
        "--pixel-budget-mp",
        "most decoded megapixels of all requests in flight together (about 3 MB each)",
        scale=1e6,
    )
    upload_budget_bytes: int = 160 * 2**20  # request bodies arriving or held at once
    max_requests: int = _flag(  # requests being answered at once (worker threads); more get 503 at once
        64, "--max-requests", "requests answered at once; more get 503 at once"
    )
    max_connections: int = 512  # connections held open (receiving, idle or closing); more get 503 at once
    backlog: int = 128  # the listen queue: a burst waits there to be accepted instead of being reset
    header_timeout_s: float = _flag(  # request line and headers, all of them; also the longest silence in a body
        10.0, "--header-timeout", "seconds for a request line and headers, and the longest silence inside a body"
    )
    body_timeout_s: float = _flag(60.0, "--body-timeout", "seconds for a whole upload")  # a whole body
    keepalive_timeout_s: float = 15.0  # an idle connection between requests
    write_timeout_s: float = 10.0  # sending an answer
    linger_s: float = 2.0  # after a refusal: reading what the client still sends, so it gets the answer, not a reset
    budget_wait_s: float = 5.0  # how long a request waits for the pixel budget before its 503
    max_parts: int = 16  # parts of a multipart/form-data body
    max_part_header_bytes: int = 8192  # the headers of one part
    max_batch: int = _flag(16, "--max-batch", "most requests batched into one forward")
    max_wait_s: float = _flag(
        0.005, "--max-wait-ms", "longest a request waits for others to batch with, in ms", scale=0.001
    )
    max_queue: int = 64

    def __post_init__(self) -> None:
        # One request alone always fits: a budget smaller than one request's limit would refuse it forever.
        object.__setattr__(self, "upload_budget_bytes", max(self.upload_budget_bytes, self.max_upload_bytes))
        object.__setattr__(self, "pixel_budget", max(self.pixel_budget, self.max_image_pixels))
