"""The call provider: a call to a phone, answered as the loan's script says (POST /admin/call-outcomes sets it)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from sandbox.gateway.common import Amount, Body, Channel, IsoDate, Language, Phone, Text


class CallRequest(Body):
    to: Phone
    script: Text(10_000)
    language: Language


CallOutcomeName = Literal["answered", "no_answer", "wrong_number", "promise", "dispute"]


class CallScript(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: CallOutcomeName
    promise_amount: Amount | None = None
    promise_date: IsoDate | None = None

    @model_validator(mode="after")
    def _promise_fields(self) -> CallScript:
        if self.outcome == "promise":
            if self.promise_amount is None or self.promise_date is None:
                raise ValueError("outcome 'promise' needs promise_amount and promise_date")
        elif self.promise_amount is not None or self.promise_date is not None:
            raise ValueError("promise_amount and promise_date go only with outcome 'promise'")
        return self

    def result(self) -> dict[str, str]:
        out = {"outcome": self.outcome}
        if self.outcome == "promise":
            out |= {"promise_amount": self.promise_amount, "promise_date": self.promise_date}
        return out


def play_call(script: list[CallScript] | None) -> dict:
    """The outcome of the next call to a loan: its script played in order, the last entry repeating (the list
    is consumed); answered when it has none. Pure: the simulator's direct engine answers calls with it too."""
    if not script:
        return {"outcome": "answered"}
    step = script.pop(0) if len(script) > 1 else script[0]
    return step.result()


def _answer(body: CallRequest, now: dt.datetime, gateway: Any) -> dict:
    return gateway.next_call_result(body.loan_id)


CHANNEL = Channel("call", "/v1/calls", CallRequest, "cal", _answer)
