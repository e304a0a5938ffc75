"""structlog, configured once for worker, starter and stack.

JSON when not on a terminal, a readable console on one. Lines are bound with loan id,
workflow id, run id, activity and attempt by the activities; a processor masks phone
numbers, ID numbers and email addresses wherever they slip into a value.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog

# Linear patterns only: each match may start only where a run of its characters starts (the look-behind), and every
# repetition is bounded. `[\w.+-]+@[\w-]+(\.[\w-]+)+` tried every start position of a long run to its end: a 60 KB URL
# path took 10 s and stalled the API's /health behind it.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_ID_NUMBER = re.compile(r"\b\d{17}[\dXx]\b")  # PRC resident identity card number
_PHONE = re.compile(r"(?<!\d)(\+?86[- ]?)?1[3-9]\d{9}(?!\d)|(?<!\d)\+\d{7,14}(?!\d)")


MAX_LOGGED = 4096  # characters of one logged value; the rest is cut before masking (bounds the work per line)


def mask(text: str) -> str:
    if len(text) > MAX_LOGGED:
        text = text[:MAX_LOGGED] + f"...[{len(text) - MAX_LOGGED} more characters]"
    text = _EMAIL.sub(lambda m: m.group(0)[0] + "***@***", text)
    text = _ID_NUMBER.sub(lambda m: m.group(0)[:4] + "*" * 10 + m.group(0)[-4:], text)
    return _PHONE.sub(lambda m: m.group(0)[:3] + "****" + m.group(0)[-4:], text)


def mask_pii(_logger, _name, event_dict: dict) -> dict:
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = mask(value)
    return event_dict


_configured = False


def configure(fmt: str = "auto", level: str = "info") -> None:
    global _configured
    if _configured:
        return
    _configured = True
    json_out = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer = structlog.processors.JSONRenderer(ensure_ascii=False) if json_out else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_pii,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
