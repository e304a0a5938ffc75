"""The SMS provider: a text to a mobile number."""

from __future__ import annotations

from sandbox.gateway.common import Body, Channel, Language, Phone, Text


class SmsRequest(Body):
    to: Phone
    text: Text(1000)
    language: Language


CHANNEL = Channel("sms", "/v1/sms", SmsRequest, "sms")
