"""The console's settings, from the environment (infra.config's conventions: a bad value names itself)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from infra.config import Common, Flag, Port, Str, env, load


class ConsoleSettings(Common):
    ui_url: Str | None = env(
        "TEMPORAL_UI_URL",
        None,
        pattern=r"^https?://",
        description="the Temporal Web UI as operators reach it (default http://localhost:<TEMPORAL_UI_PORT>)",
    )
    ui_port: Port = env("TEMPORAL_UI_PORT", 8233)
    cookie_secure: Flag = env("CONSOLE_COOKIE_SECURE", False, description="always mark the session cookie Secure")
    trust_proxy: Flag = env("CONSOLE_TRUST_PROXY", False, description="believe X-Forwarded-Proto from a proxy")
    language: Literal["zh_CN", "en"] = env(
        "CONSOLE_LANGUAGE", "zh_CN", description="the console's language until an operator picks one (zh_CN or en)"
    )
    time_zone: Str = env(
        "CONSOLE_TIME_ZONE", "Asia/Shanghai", description="the floor's zone: the console shows dates and times in it"
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import available_timezones

        if v not in available_timezones():
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. Asia/Shanghai)")
        return v

    @property
    def temporal_ui(self) -> str:
        return (self.ui_url or f"http://localhost:{self.ui_port}").rstrip("/")


def console_settings() -> ConsoleSettings:
    return load(ConsoleSettings)
