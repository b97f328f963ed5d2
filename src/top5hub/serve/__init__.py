"""The local web page and JSON API behind ``serve.py``: try the classifiers in a browser, or over HTTP.

Built on the standard library's ``http.server`` (one intake thread reads every request whole, with
deadlines; a bounded set of worker threads answers them: see :mod:`.intake`), not a web framework: the
server is meant for one machine or a lab's loopback, the work is in the network, not in HTTP, and a
thread per request being answered fits the blocking ``predict`` call. Throughput comes from
:mod:`.batching` (concurrent requests share a forward pass), not from an event loop; FastAPI or Flask
would add a dependency tree, and a server (uvicorn, gunicorn), for no gain here. Not part of the
library: ``models`` and ``transforms`` never import it.
"""

from .app import Limits, ModelPool, PredictServer
from .batching import Busy, DynamicBatcher
from .intake import Budget

__all__ = ["Budget", "Busy", "DynamicBatcher", "Limits", "ModelPool", "PredictServer"]
