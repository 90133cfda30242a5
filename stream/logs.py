"""Log output formats of a worker: plain text for a terminal, JSON lines for a log pipeline (`AIOPS_LOG_FORMAT`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

__all__ = ["JsonFormatter"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line (time in UTC, level, logger, message, traceback when there is one), so Loki,
    Elasticsearch or Cloud Logging read fields instead of parsing text, and a multi-line traceback stays one record."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single line of JSON."""
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc, default=str).decode()
