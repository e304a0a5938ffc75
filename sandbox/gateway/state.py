"""The gateway's state: its outbox, its counters, the faults it injects and the call outcomes it plays."""

from __future__ import annotations

import hmac
import random
from dataclasses import dataclass, field

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from sandbox.gateway.calls import CallScript, play_call
from sandbox.gateway.common import ApiError
from sandbox.gateway.store import Store


class FaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    lost_response_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    burst_429: int = Field(default=0, ge=0)
    retry_after_s: int = Field(default=1, ge=0, le=3600)
    visit_outside: int = Field(default=0, ge=0, description="book the next N visits outside the windows they were sent")
    seed: int | None = None


@dataclass
class Stats:
    requests: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    faults: dict[str, int] = field(default_factory=lambda: {"503": 0, "502": 0, "429": 0})

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "faults": dict(self.faults),
        }


class Gateway:
    def __init__(self, api_key: str, db_path: str | None):
        self.api_key = api_key
        self.store = Store(db_path)
        self.stats = Stats()
        self.faults = FaultSettings()
        self.burst_left = 0
        self.visits_outside_left = 0
        self.rng = random.Random()
        self.call_scripts: dict[str, list[CallScript]] = {}

    def set_faults(self, settings: FaultSettings) -> None:
        self.faults = settings
        self.burst_left = settings.burst_429
        self.visits_outside_left = settings.visit_outside
        self.rng = random.Random(settings.seed)

    def faults_view(self) -> dict:
        return self.faults.model_dump() | {"burst_429": self.burst_left, "visit_outside": self.visits_outside_left}

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def next_call_result(self, loan_id: str) -> dict:
        return play_call(self.call_scripts.get(loan_id))

    def reset(self) -> None:
        self.store.clear()
        self.stats = Stats()
        self.set_faults(FaultSettings())
        self.call_scripts.clear()

    def check_key(self, request: Request, *, allow_query: bool = False) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            presented = token.strip()
        elif allow_query and request.query_params.get("key"):
            presented = request.query_params["key"]
        elif header:
            raise ApiError(401, "authorization", "expected 'Authorization: Bearer <api key>'")
        else:
            raise ApiError(
                401,
                "authorization",
                "missing API key: send 'Authorization: Bearer <api key>'" + (" or ?key=" if allow_query else ""),
            )
        if not hmac.compare_digest(presented.encode(), self.api_key.encode()):
            raise ApiError(401, "authorization", "wrong API key")
