"""The letter provider: the written notices and letters the ladder sends by post."""

from __future__ import annotations

from typing import Literal

from sandbox.gateway.common import Body, Channel, Language, Text


class LetterRequest(Body):
    kind: Literal["reminder_notice", "overdue_letter", "lawyers_letter", "bureau_notice", "agency_notice"]
    recipient: Text(200)
    address: Text(500)
    content: Text(100_000)
    language: Language


CHANNEL = Channel("letter", "/v1/letters", LetterRequest, "ltr")
