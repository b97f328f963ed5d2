"""The local web page and JSON API behind ``serve.py``: try the classifiers in a browser, or over HTTP.

Built on the standard library's ``http.server`` (one intake thread reads every request whole, with
deadlines; a bounded set of worker threads answers them: see :mod:`.intake`), not a web framework: the
server is meant for one machine or a lab's loopback, the work is in the network, not in HTTP, and a
thread per request being answered fits the blocking ``predict`` call. Throughput comes from
:mod:`.batching` (concurrent requests share a forward pass), not from an event loop; FastAPI or Flask
would add a dependency tree, and a server (uvicorn, gunicorn), for no gain here. Not part of the
library: ``models`` and ``transforms`` never import it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import Busy
from .batching import DynamicBatcher
from .intake import Budget
from .limits import Limits

if TYPE_CHECKING:
    from .app import ModelPool, PredictServer

__all__ = ["Budget", "Busy", "DynamicBatcher", "Limits", "ModelPool", "PredictServer"]


def __getattr__(name: str) -> Any:
    """The server itself imports torch: loaded on first use, so ``serve.py --help`` (which reads
    :class:`Limits`) answers at once."""
    if name in ("ModelPool", "PredictServer"):
        return getattr(importlib.import_module(".app", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
