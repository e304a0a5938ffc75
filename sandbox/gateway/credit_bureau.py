"""The credit bureau: the notice before a report, the report, and its correction."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from sandbox.gateway.common import Amount, Body, Channel, Currency, short_id


class CreditBureauRequest(Body):
    kind: Literal["notice", "report", "correction"]
    amount: Amount
    currency: Currency
    dpd: int = Field(ge=0, strict=True)


def _reference(body: CreditBureauRequest, now: dt.datetime, gateway: Any) -> dict:
    return {"reference": f"CB-{now:%Y%m%d}-{short_id()}"}


CHANNEL = Channel("credit_bureau", "/v1/credit-bureau", CreditBureauRequest, "cbr", _reference)
