"""Console logging in the shape Core Tools prints: ``[2024-05-01T10:00:00.123Z] message``."""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime

# Loggers that would otherwise flood the console at INFO (the Azure SDK logs every request and its headers).
_QUIET = {"azure": "LOGLEVEL_AZURE", "werkzeug": None, "urllib3": None}


class CoreToolsFormatter(logging.Formatter):
    """UTC timestamp, then the message; warnings and errors carry their level so they stand out in files."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        level = "" if record.levelno <= logging.INFO else f"{record.levelname}: "
        text = f"[{stamp}] {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(level: int = logging.INFO) -> None:
    """Root logging to stdout at INFO, line-buffered so a captured log file is current."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CoreToolsFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name, variable in _QUIET.items():
        override = os.environ.get(variable) if variable else None
        logging.getLogger(name).setLevel((override or "WARNING").upper())
