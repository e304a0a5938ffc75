"""The sandbox channel gateway: FastAPI app, SQLite outbox, fault injection, and a test helper.

Contract (every error body is {"error": {"field": ..., "reason": ...}}):

- Auth: /v1/* and /admin/* and /outbox need `Authorization: Bearer <key>` (401 otherwise);
  /outbox.html also takes `?key=`; /health is open.
- POST /v1/<channel> needs `Idempotency-Key` (1..200 chars, 400 otherwise) and a JSON body that
  validates against the channel's model (422 naming the first bad field otherwise).
- The first request with a key is stored and answered 200 {"id", "channel", "idempotency_key",
  "accepted_at", "duplicate": false, ...channel fields}; the same key with the same channel and
  body returns the stored response with "duplicate": true; with anything else, 409.
- Faults (POST /admin/faults) apply to /v1 requests that passed auth and the key check, in this
  order: added latency, 429 burst (with Retry-After), 503 error rate (nothing stored), then the
  request is processed, then the lost-response rate (stored, or duplicate counted, then 502).

One module per provider (sms, emails, letters, calls, visits, law_firm, court, credit_bureau, agency: its request
model and what its answer adds), registered in `channels`; `delivery` gives each its POST route, `outbox` and
`admin` the rest, `app` composes them on one `state.Gateway` (its `store` the outbox); `process` runs it in a
subprocess.
"""

# Every name the single-module gateway had, from where it lives now.
from sandbox.gateway.agency import AgencyRequest
from sandbox.gateway.app import create_app
from sandbox.gateway.calls import CallOutcomeName, CallRequest, CallScript, play_call
from sandbox.gateway.channels import CHANNELS
from sandbox.gateway.common import (
    DEFAULT_API_KEY,
    INSTANCE_HEADER,
    Amount,
    ApiError,
    Body,
    Channel,
    Currency,
    Email,
    IsoDate,
    Language,
    LoanId,
    Phone,
    Text,
)
from sandbox.gateway.court import CourtRequest
from sandbox.gateway.credit_bureau import CreditBureauRequest
from sandbox.gateway.emails import EmailRequest
from sandbox.gateway.law_firm import LawFirmRequest
from sandbox.gateway.letters import LetterRequest
from sandbox.gateway.process import (
    PROJECT_ROOT,
    GatewayStartError,
    RunningGateway,
    free_port,
    running_gateway,
    start_in_subprocess,
)
from sandbox.gateway.sms import SmsRequest
from sandbox.gateway.state import FaultSettings, Gateway, Stats
from sandbox.gateway.store import MEMORY, Store
from sandbox.gateway.visits import VisitRequest, VisitWindow

__all__ = [
    "CHANNELS",
    "DEFAULT_API_KEY",
    "INSTANCE_HEADER",
    "MEMORY",
    "PROJECT_ROOT",
    "AgencyRequest",
    "Amount",
    "ApiError",
    "Body",
    "CallOutcomeName",
    "CallRequest",
    "CallScript",
    "Channel",
    "CourtRequest",
    "CreditBureauRequest",
    "Currency",
    "Email",
    "EmailRequest",
    "FaultSettings",
    "Gateway",
    "GatewayStartError",
    "IsoDate",
    "Language",
    "LawFirmRequest",
    "LetterRequest",
    "LoanId",
    "Phone",
    "RunningGateway",
    "SmsRequest",
    "Stats",
    "Store",
    "Text",
    "VisitRequest",
    "VisitWindow",
    "create_app",
    "free_port",
    "play_call",
    "running_gateway",
    "start_in_subprocess",
]
