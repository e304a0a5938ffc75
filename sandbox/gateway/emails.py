"""The email provider. (Not `email.py`: that would read as the standard library's package.)"""

from __future__ import annotations

from sandbox.gateway.common import Body, Channel, Email, Language, Text


class EmailRequest(Body):
    to: Email
    subject: Text(300)
    body: Text(100_000)
    language: Language


CHANNEL = Channel("email", "/v1/email", EmailRequest, "eml")
