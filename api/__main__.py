"""python -m api [--host 127.0.0.1] [--port 8800]: the payments and case API under uvicorn.

Environment:
  API_HOST / API_PORT        where to listen (127.0.0.1 / 8800)
  API_TOKEN                  the bearer token clients send (comma-separated to rotate);
                             "dev-token" when unset, for the local stack only
  API_REQUIRE_TOKEN=1        refuse to start unless API_TOKEN is set (and not "dev-token")
  API_UPDATE_TIMEOUT         seconds to wait for a case to answer an input (30)
  TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE, DATABASE_URL: as for the worker
  LOG_FORMAT / LOG_LEVEL
  OTEL_EXPORTER_OTLP_ENDPOINT  tracing over OTLP/HTTP (off when unset; infra/tracing.py)

Readiness: GET /health answers 200 without a token. The OpenAPI document is /openapi.json
(interactive: /docs).
"""

from __future__ import annotations

import argparse
import sys

from infra.process import exit_with_parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api",
        description="Loan collections payments and case API",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="address to bind (API_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (API_PORT, default 8800)")
    parser.add_argument("--exit-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import structlog
    import uvicorn

    from api.deps import ConfigError, api_settings, tokens_from_env
    from api.server import create_app
    from domain import calendar
    from infra import logging as applog
    from infra import tracing

    try:
        cfg = api_settings()
        tokens = tokens_from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from infra import link_secret

    try:
        link_secret.check()  # the borrower page's secrets and address
    except link_secret.LinkSecretError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    applog.configure(cfg.log_format, cfg.log_level)
    calendar.use_folder(cfg.calendar_dir)
    tracing.setup("collections-api")  # OTEL_EXPORTER_OTLP_ENDPOINT: requests get server spans, the client the interceptor
    args.host, args.port = args.host or cfg.host, args.port or cfg.port
    if args.exit_with_parent:
        exit_with_parent(args.exit_with_parent)
    app = create_app(tokens)
    structlog.get_logger("api").info(
        "api listening",
        url=f"http://{args.host}:{args.port}",
        openapi=f"http://{args.host}:{args.port}/openapi.json",
        temporal=cfg.temporal_address,
        task_queue=cfg.task_queue,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
