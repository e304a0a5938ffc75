"""The providers the gateway stands in for, one module each, in the order the outbox page lists them."""

from __future__ import annotations

from sandbox.gateway import agency, calls, court, credit_bureau, emails, law_firm, letters, sms, visits
from sandbox.gateway.common import Channel

CHANNELS: dict[str, Channel] = {
    c.name: c
    for c in [
        sms.CHANNEL,
        emails.CHANNEL,
        letters.CHANNEL,
        calls.CHANNEL,
        visits.CHANNEL,
        law_firm.CHANNEL,
        court.CHANNEL,
        credit_bureau.CHANNEL,
        agency.CHANNEL,
    ]
}
