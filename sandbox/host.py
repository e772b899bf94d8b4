"""``python -m sandbox.host``: run the function app locally, like ``func start`` (Core Tools is unavailable here).

Settings come from the environment and, for names it does not set, ``local.settings.json`` in the
script root. HTTP triggers answer under ``/api``; queue triggers poll the storage account named by
their connection; timers fire on their NCRONTAB schedules; ``POST /admin/functions/<name>`` fires a
non-HTTP function now. SIGINT/SIGTERM stop it gracefully (exit code 0).

For this repository's app it first checks the app's settings (``shared.config``): a value that is
invalid or still a placeholder from ``local.settings.example.json`` stops it with one line naming
the setting (exit code 1), rather than a host that starts and fails a minute later.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from sandbox.localhost.logs import configure_logging
from sandbox.localhost.runtime import HostConfig, LocalHost
from sandbox.localhost.settings import SettingsError, load_settings, local_http_port

log = logging.getLogger("localhost.host")

DEFAULT_PORT = 7071


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox.host", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default: Host.LocalHttpPort or 7071)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--app", default="function_app:app", help="'module:attribute' of the FunctionApp")
    parser.add_argument(
        "--script-root", type=Path, default=None, help="folder with host.json and the app (default: cwd)"
    )
    parser.add_argument(
        "--grace-period", type=float, default=10.0, help="seconds to let in-flight work finish on stop (default 10)"
    )
    return parser.parse_args(argv)


def app_settings_problem(root: Path) -> str | None:
    """What the app's own settings check refuses, in one line; None when it accepts them (or there is none)."""
    if not (root / "shared" / "config.py").is_file():
        return None  # another function app: its settings are its own business
    try:
        load_settings(root)  # local.settings.json under the environment, as start() does
    except SettingsError:
        return None  # start() reports a broken local.settings.json itself
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from pydantic import ValidationError

    from shared.config import Settings, invalid_settings, placeholder_message

    try:
        placeholders = Settings().placeholders
    except ValidationError as exc:
        return str(invalid_settings(exc))
    return placeholder_message(placeholders) if placeholders else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    root = (args.script_root or Path.cwd()).resolve()
    if not root.is_dir():
        log.error("Script root %s is not a directory", root)
        return 1
    problem = app_settings_problem(root)
    if problem:
        log.error("Refusing to start: %s", problem)
        return 1
    port = args.port if args.port is not None else (local_http_port(root) or DEFAULT_PORT)
    host = LocalHost(
        HostConfig(script_root=root, app=args.app, host=args.host, port=port, grace_period=args.grace_period)
    )

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("Second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        log.info("Received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        host.start()
    except Exception as exc:
        log.error("The host failed to start: %s", exc, exc_info=not isinstance(exc, ValueError | OSError))
        host.stop()
        return 1
    while not stop.wait(1.0):
        pass
    host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
