"""``lsms serve``: a local web page to try a checkpoint (upload a slice, type a sentence, see the mask)."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from lsms.cli import options
from lsms.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="a local web page: upload a slice, type a sentence, see the overlay, download the mask",
        description="Serves one checkpoint with FastAPI/uvicorn. Binds to 127.0.0.1 by default: the page has no "
        "authentication, so only expose it on other interfaces on a trusted network.",
    )
    options.add_checkpoint(parser, default="qata-cov19")  # the released QaTa-COV19 model
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this computer only)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument(
        "--max-upload-mb", type=float, default=20.0, help="largest accepted upload (default: 20)"
    )
    options.add_prediction_options(parser)
    options.add_backend(parser)
    parser.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from lsms.inference.serve import serve

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: expected 1-65535")
    if not args.max_upload_mb > 0:
        raise ConfigError(f"--max-upload-mb {args.max_upload_mb}: expected a positive size")
    predictor = options.load_predictor(args)
    if not _is_loopback(args.host):
        print(
            f"lsms serve: warning: binding to {args.host}: anyone who can reach it can use the page",
            file=sys.stderr,
        )
    print(f"lsms serve: open http://{args.host}:{args.port}/ (Ctrl+C stops)", file=sys.stderr)
    serve(predictor, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
    return 0
