#!/usr/bin/env python3
"""A local web page and JSON API for the classifiers: drop photos, compare models, see where they looked.

    python serve.py                                   # http://127.0.0.1:8080/, EfficientNet-Lite0/1/2
    python serve.py --port 9000 --models efficientnet_lite0 resnet50
    python serve.py --models resnet50 --weights-path finetuned.pth --categories classes.txt
    curl --data-binary @cat.jpg "http://127.0.0.1:8080/predict?model=efficientnet_lite0&k=5&explain=1"

GET / is the page; POST /predict takes the image bytes as the body (or a multipart/form-data file) and
answers JSON: model, weights, topk [{index, label, probability}], time_ms, batch_size, and with
explain=1 the heatmap (grayscale) and overlay (picture with the heat in colour) as PNG data URLs.
GET /models lists the models (and whether each can answer), GET /health says the server is up.
Binds 127.0.0.1 and answers only requests for a loopback name unless --host/--allow-host say otherwise.
Every model is loaded and checked when the server starts. SIGTERM or Ctrl-C stops it gracefully.
The server itself is top5hub.serve (standard library http.server, dynamic batching).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from ..errors import Top5HubError, UsageError
from .arguments import (
    OneLineParser,
    add_run_arguments,
    check_run_arguments,
    configure_logging,
    in_cli_terms,
    run_config,
)

if TYPE_CHECKING:  # the server imports torch: loaded after the arguments are parsed, so --help answers at once
    from ..serve import PredictServer
    from ..serve.limits import Limits

DEFAULT_MODELS = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]  # their weights work offline


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name the server may be reached by besides 127.0.0.1, localhost and [::1] (the Host header; "
        "repeatable), e.g. the machine's LAN name when --host 0.0.0.0",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=DEFAULT_MODELS,
        help=f"models offered, space- or comma-separated; the first is the default ({' '.join(DEFAULT_MODELS)})",
    )
    parser.add_argument("--weights-path", help="a local state-dict file for the one model of --models")
    parser.add_argument(
        "--categories", help="the class names of fine-tuned --weights-path weights: a text file, one name per line"
    )
    limits = parser.add_argument_group("limits (each refusal names its flag)")
    for item in _limit_flags():
        default = _in_flag_units(item)
        limits.add_argument(
            item.metadata["flag"],
            type=int if isinstance(item.default, int) and item.metadata["scale"] == 1 else float,
            default=default,
            help=f"{item.metadata['help']} (default: {default:g})",
        )
    limits.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30,
        help="on SIGTERM or Ctrl-C, seconds to finish the requests in flight (default: 30)",
    )
    # Each request is one forward's worth of a batch, decoded by the worker answering it: the batcher decides
    # batch_size (--max-batch), and there are no decoding workers.
    add_run_arguments(parser.add_argument_group("run"), exclude=("batch_size", "workers"))
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log every request on stderr, and the library's debug notes"
    )
    args = parser.parse_args(argv)
    args.models = [name for value in args.models for name in value.split(",") if name]
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be from 0 to 65535, got {args.port}")
    positive = ("max_upload_mb", "max_image_mp", "pixel_budget_mp", "header_timeout", "body_timeout")
    for name in positive:
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.max_batch < 1 or args.max_requests < 1 or args.max_wait_ms < 0 or args.shutdown_timeout < 0:
        parser.error(
            "--max-batch and --max-requests must be at least 1, --max-wait-ms and --shutdown-timeout 0 or more"
        )
    if (args.weights_path or args.categories) and len(dict.fromkeys(args.models)) != 1:
        flag = "--weights-path" if args.weights_path else "--categories"
        parser.error(f"{flag} is for one model: give --models one architecture (got {' '.join(args.models)})")
    return args


def limits_from(args: argparse.Namespace) -> Limits:
    from ..serve.limits import Limits

    values: dict[str, Any] = {}
    for item in _limit_flags():
        value = getattr(args, _dest(item)) * item.metadata["scale"]
        values[item.name] = round(value) if isinstance(item.default, int) else value
    return Limits(**values)


def _limit_flags() -> list[dataclasses.Field]:
    """The fields of :class:`~top5hub.serve.Limits` that are flags (``flag``, ``help`` and ``scale`` in their
    metadata): each default declared once, there."""
    from ..serve.limits import Limits

    return [item for item in dataclasses.fields(Limits) if "flag" in item.metadata]


def _dest(item: dataclasses.Field) -> str:
    return str(item.metadata["flag"]).removeprefix("--").replace("-", "_")


def _in_flag_units(item: dataclasses.Field) -> float:
    """A limit's default in its flag's unit (MB, megapixels, ms): 20 for 20 MiB."""
    value = item.default / item.metadata["scale"]
    return round(value, 9) if isinstance(value, float) else value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(verbose=args.verbose)
    from ..models import list_models
    from ..serve import ModelPool, PredictServer

    unknown = [name for name in args.models if name not in list_models()]
    if unknown:
        print(f"serve.py: error: unknown models {unknown}: choose from {', '.join(list_models())}", file=sys.stderr)
        return 2
    try:
        check_run_arguments(args)  # the TOP5HUB_* settings too: a malformed one stops the start, not each request
        config = dataclasses.replace(run_config(args), device=args.device)
        limits = limits_from(args)
        pool = ModelPool(args.models, limits, config, weights_path=args.weights_path, categories=args.categories)
    except (UsageError, Top5HubError) as error:
        print(f"serve.py: error: {in_cli_terms(error)}", file=sys.stderr)
        return 2
    try:
        server = PredictServer((args.host, args.port), pool, limits, not args.verbose, _allowed_hosts(args))
    except OSError as error:
        print(f"serve.py: error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 2
    try:
        try:
            pool.load(explain_error=in_cli_terms)  # connections meanwhile wait in the listen queue
        except KeyboardInterrupt:
            print("serve.py: interrupted while loading the models", file=sys.stderr)
            return 130
        if not pool.available():
            problems = "; ".join(f"{name}: {problem}" for name, problem in pool.problems.items())
            print(f"serve.py: error: no model can be served: {problems}", file=sys.stderr)
            return 2
        for name, problem in pool.problems.items():
            print(f"serve.py: warning: {name} is unavailable (GET /models says so): {problem}", file=sys.stderr)
        if not _loopback(args.host):
            print(
                f"serve.py: warning: listening on {args.host}: other machines can reach this server", file=sys.stderr
            )
        return _serve(server, args.shutdown_timeout, pool.available())
    finally:
        server.server_close()


def _serve(server: PredictServer, shutdown_timeout: float, models: list[str]) -> int:
    """Serve until SIGTERM or SIGINT, then stop gracefully (a second signal stops at once)."""
    signals: list[int] = []

    def stop(number: int, frame: Any) -> None:
        if signals:
            raise SystemExit(1)  # asked twice: leave the requests in flight
        signals.append(number)
        threading.Thread(target=server.shutdown, name="serve-shutdown", daemon=True).start()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop)
    print(f"Serving {', '.join(models)} on {server.url}", flush=True)
    server.serve_forever()
    name = signal.Signals(signals[0]).name if signals else "a stop"
    print(
        f"serve.py: {name}: stopping; finishing the requests in flight (at most {shutdown_timeout:g} s)",
        file=sys.stderr,
        flush=True,
    )
    unfinished = server.stop(shutdown_timeout)
    if unfinished:
        print(f"serve.py: stopped with {unfinished} requests unfinished after {shutdown_timeout:g} s", file=sys.stderr)
        return 1
    print("serve.py: stopped; every request in flight was answered", file=sys.stderr)
    return 0


def _allowed_hosts(args: argparse.Namespace) -> tuple[str, ...]:
    """--allow-host names, and the bound --host when it is a name or address one can reach the server by."""
    names = [name.strip() for name in args.allow_host if name.strip()]
    if args.host not in ("", "0.0.0.0", "::"):
        names.append(f"[{args.host}]" if ":" in args.host else args.host)
    return tuple(names)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


if __name__ == "__main__":
    sys.exit(main())
