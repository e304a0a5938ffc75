"""python -m sandbox [--host 127.0.0.1] [--port 8700] [--db FILE]: the sandbox gateway under uvicorn.

Environment: GATEWAY_HOST, GATEWAY_PORT, GATEWAY_DB (SQLite file; in-process store if unset),
GATEWAY_API_KEY (default "sandbox-key").
"""

from __future__ import annotations

import argparse

from infra.process import exit_with_parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Sandbox channel gateway")
    from infra.config import GatewaySettings, SettingsError, load

    try:
        cfg = load(GatewaySettings)
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None
    parser.add_argument("--host", default=cfg.host)
    parser.add_argument("--port", type=int, default=cfg.port)
    parser.add_argument("--db", default=cfg.db, help="SQLite file for the outbox")
    parser.add_argument("--log-level", default=cfg.server_log_level)
    parser.add_argument("--exit-with-parent", type=int, metavar="PID", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    try:
        from infra import logging as applog
    except ImportError:
        applog = None
    if applog is not None and hasattr(applog, "configure"):
        try:
            applog.configure(level=args.log_level)
        except TypeError:
            applog.configure()

    import structlog
    import uvicorn

    from sandbox.gateway import create_app

    if args.exit_with_parent:
        exit_with_parent(args.exit_with_parent)
    app = create_app(db_path=args.db)
    structlog.get_logger("sandbox").info(
        "gateway listening",
        url=f"http://{args.host}:{args.port}",
        outbox_page=f"http://{args.host}:{args.port}/outbox.html?key=<api key>",
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
