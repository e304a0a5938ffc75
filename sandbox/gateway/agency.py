"""The collection agency: a placement, and its recall."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sandbox.gateway.common import Amount, Body, Channel, Currency, short_id


class AgencyRequest(Body):
    kind: Literal["place", "recall"]
    amount: Amount
    currency: Currency


def _placement(body: AgencyRequest, now: dt.datetime, gateway: Any) -> dict:
    return {"placement_id": f"AG-{short_id()}"}


CHANNEL = Channel("agency", "/v1/agency", AgencyRequest, "agy", _placement)
