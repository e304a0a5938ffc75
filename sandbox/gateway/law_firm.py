"""The law firm: a lawyer's demand letter, opened as a matter."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sandbox.gateway.common import Amount, Body, Channel, Currency, Text, short_id


class LawFirmRequest(Body):
    recipient: Text(200)
    address: Text(500)
    amount: Amount
    currency: Currency
    content: Text(100_000)


def _matter(body: LawFirmRequest, now: dt.datetime, gateway: Any) -> dict:
    return {"matter_id": f"LF-{now:%Y}-{short_id()}"}


CHANNEL = Channel("law_firm", "/v1/law-firm", LawFirmRequest, "law", _matter)
