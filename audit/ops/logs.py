"""Structured JSON logs, one object a line, each with the request id of the request it belongs to.

What never reaches a log: a token, a password or a patient reference. The access log names the
route *template* (``/api/v1/encounters/{encounter_id}``), never the raw path or its query string;
database errors carry no statement values (``hide_parameters`` in `audit.db`); and every message is
scrubbed of bearer tokens, ``password=...`` pairs and the ``input_value=...`` that validation errors
quote. Uvicorn's own access log (raw paths) is off.
"""

from __future__ import annotations

import json
import logging
import re
import time
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str | None] = ContextVar("audit_request_id", default=None)

_SCRUB = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (re.compile(r"(?i)(password[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,&;}]+)"), r"\1[redacted]"),
    (re.compile(r"(?i)(access_token[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,&;}]+)"), r"\1[redacted]"),
    (re.compile(r"input_value=(\"[^\"]*\"|'[^']*'|\S+)"), "input_value=[redacted]"),
    (re.compile(r"\[parameters: .*?\]", re.S), "[parameters: redacted]"),
)
_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}


def scrub(text: str) -> str:
    for pattern, replacement in _SCRUB:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id", ...extra fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            # The access log is made of route templates and numbers only: nothing to scrub.
            "msg": record.getMessage() if record.name == "audit.access" else scrub(record.getMessage()),
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(level: str = "info") -> dict[str, Any]:
    """A `logging.config.dictConfig` for the server (uvicorn's `log_config`): every logger, ours and
    uvicorn's, writes JSON lines to stderr; uvicorn's access log is silenced (ours replaces it)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "audit.ops.logs.JsonFormatter"}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
