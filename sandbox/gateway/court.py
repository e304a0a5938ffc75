"""The court: a lawsuit, a payment order or an enforcement application, answered with a case number."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from sandbox.gateway.common import Amount, Body, Channel, Currency, Text

# the case-type code of a court case number (民初: first-instance civil, 民督: payment order, 执: enforcement)
_COURT_CODES = {"lawsuit": "民初", "payment_order": "民督", "enforcement": "执"}


class CourtRequest(Body):
    kind: Literal["lawsuit", "payment_order", "enforcement"]
    defendant: Text(200)
    address: Text(500)
    amount: Amount
    currency: Currency


def _case_number(body: CourtRequest, now: dt.datetime, gateway: Any) -> dict:
    return {"case_number": f"({now:%Y})沪0115{_COURT_CODES[body.kind]}{uuid.uuid4().int % 100000:05d}号"}


CHANNEL = Channel("court", "/v1/court", CourtRequest, "crt", _case_number)
