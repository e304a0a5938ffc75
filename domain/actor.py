"""Who did a human step: the operator's opaque id and the role under which they acted.

Carried by every update into the workflow and written to the case's events and the audit trail.
Never a name or a token: display names stay in the database (operators table) and are resolved
when a status is shown. Pure: safe inside the workflow sandbox.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

OPERATOR_ID_PATTERN = r"^(op-[0-9a-f]{12}|bootstrap|local-admin|system|borrower(:[A-Za-z0-9][A-Za-z0-9_.:-]{0,63})?)$"


class Actor(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    operator_id: str = Field(
        pattern=OPERATOR_ID_PATTERN,
        description="opaque operator id (op-...), 'bootstrap' (the API_TOKEN), 'local-admin' "
        "(the dev stack's CLI without a token), 'system', or 'borrower:<loan id>' (the loan's borrower on their "
        "own page, or replying to a message)",
    )
    role: str = Field(pattern=r"^[a-z_]{1,20}$", description="the role under which the step was allowed")

    def __str__(self) -> str:
        return f"{self.operator_id} ({self.role})"
