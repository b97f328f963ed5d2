#!/usr/bin/env python3
"""A local web page and JSON API for the classifiers: drop photos, compare models, see where they looked.

    python serve.py                                   # http://127.0.0.1:8080/, EfficientNet-Lite0/1/2
    python serve.py --port 9000 --models efficientnet_lite0 resnet50
    curl --data-binary @cat.jpg "http://127.0.0.1:8080/predict?model=efficientnet_lite0&k=5&explain=1"

GET / is the page; POST /predict takes the image bytes as the body (or a multipart/form-data file) and
answers JSON: model, weights, topk [{index, label, probability}], time_ms, batch_size, and with
explain=1 the heatmap (grayscale) and overlay (picture with the heat in colour) as PNG data URLs.
Binds 127.0.0.1 unless --host says otherwise. Each model loads once, on its first request.
The server itself is in _serve/ (standard library http.server, dynamic batching).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import sys

from ..errors import UsageError
from ..serve import Limits, ModelPool, PredictServer
from .arguments import add_run_arguments, check_run_arguments, configure_logging, run_config

DEFAULT_MODELS = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]  # their weights work offline


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)")
    parser.add_argument(
        "--models",
        nargs="+",
        default=DEFAULT_MODELS,
        help=f"models offered, space- or comma-separated; the first is the default ({' '.join(DEFAULT_MODELS)})",
    )
    parser.add_argument("--max-upload-mb", type=float, default=20, help="largest upload accepted, in MB (default: 20)")
    parser.add_argument(
        "--max-batch", type=int, default=16, help="most requests batched into one forward (default: 16)"
    )
    parser.add_argument(
        "--max-wait-ms", type=float, default=5, help="longest a request waits for others to batch with (default: 5)"
    )
    add_run_arguments(parser.add_argument_group("run"))
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log every request on stderr, and the library's debug notes"
    )
    args = parser.parse_args(argv)
    args.models = [name for value in args.models for name in value.split(",") if name]
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be from 0 to 65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_batch < 1 or args.max_wait_ms < 0:
        parser.error("--max-upload-mb must be positive, --max-batch at least 1, --max-wait-ms 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(verbose=args.verbose)
    from ..models import list_models

    unknown = [name for name in args.models if name not in list_models()]
    if unknown:
        print(f"serve.py: error: unknown models {unknown}: choose from list_models()", file=sys.stderr)
        return 2
    try:
        check_run_arguments(args)
        config = dataclasses.replace(run_config(args), device=args.device)
    except UsageError as error:
        print(f"serve.py: error: {error}", file=sys.stderr)
        return 2
    limits = Limits(
        max_upload_bytes=round(args.max_upload_mb * 2**20),
        max_batch=args.max_batch,
        max_wait_s=args.max_wait_ms / 1000,
    )
    try:
        server = PredictServer(
            (args.host, args.port),
            ModelPool(args.models, limits, config),
            limits,
            not args.verbose,
        )
    except OSError as error:
        print(f"serve.py: error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 2
    if not _loopback(args.host):
        print(f"serve.py: warning: listening on {args.host}: other machines can reach this server", file=sys.stderr)
    print(f"Serving {', '.join(args.models)} on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
