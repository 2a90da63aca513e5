"""One log format for the whole ``serve`` process: ours, uvicorn's (server and access) and Python warnings.

uvicorn configures its own loggers with its own formats unless it is given a configuration; this is
that configuration: one handler on the root logger, and uvicorn's loggers passing their records to it.
"""

from __future__ import annotations

from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Every line the process writes, for tests and log shippers: date, time, level, logger, message.
LINE_PATTERN = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: "


def log_config(level: str = "INFO", access_log: bool = False) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping that uvicorn applies at start (``uvicorn.run(log_config=...)``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": access_log, "level": level},
            # a client's per-request lines are the access log's business, not the server's
            "httpx": {"level": "WARNING"},
        },
    }
