"""The permission table: role -> the use cases it may perform. The one source for the API's checks,
the command line's, the OpenAPI document's roles and the tests' role x endpoint matrix.

A use case is named `area.action[.variant]`; the variant is the part of the input that changes who
may do it (the kind of hold, the kind of outcome). An endpoint declares the use cases it serves; a
caller must hold a role for at least one of them to be let in (403 before anything is read), and
the application layer then checks the exact variant (403 again, nothing changed).

Four-eyes (maker-checker): the decisions in TWO_PERSON need a proposal by one operator and an
approval by another who holds a role in `approve` for that kind (see domain approvals).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from domain.actor import Actor

ROLES = ("viewer", "collector", "payments", "supervisor", "legal", "compliance", "admin")

# Every use case, with what it is. The keys are the vocabulary of PERMISSIONS.
USE_CASES: dict[str, str] = {
    "case.read": "read a case's status",
    "case.list": "list and search cases",
    "payments.read": "read the payments ledger",
    "approvals.list": "list the approvals waiting for the caller's roles",
    "case.open": "open the case of a delinquent loan (and import a portfolio)",
    "contact.update": "change a borrower's contact details (audited, old value kept)",
    "outcome.call": "record a call outcome",
    "outcome.visit": "record a visit outcome",
    "outcome.court": "record a court event (judgment, payment order, service dates)",
    "limitation.suspend": "record an obstacle that suspends the limitation period (民法典 art. 194)",
    "promise": "record a promise to pay",
    "hold.place.hardship": "place a hardship hold",
    "hold.place.dispute": "place a dispute hold",
    "hold.place.cease_contact": "place a cease-contact hold",
    "hold.place.complaint": "place a complaint hold",
    "hold.place.bankruptcy": "propose closing the borrower's cases for bankruptcy",
    "hold.place.deceased": "propose closing the borrower's cases for death",
    "hold.release.hardship": "release a hardship hold",
    "hold.release.cease_contact": "release a cease-contact hold",
    "hold.release.dispute": "release a dispute hold",
    "hold.release.complaint": "propose releasing a complaint hold",
    "payment.record": "record a payment (the bank's payment feed)",
    "payment.apply_unapplied": "apply a loan's unapplied payments to its case",
    "payment.reverse": "reverse a payment (returned transfer, failed debit)",
    "case.close": "propose closing a case by an operator's decision",
    "writeoff.confirm": "propose confirming a proposed write-off",
    "approval.close": "approve or reject an operator's closure or a write-off confirmation",
    "plan.agree": "agree a repayment plan (beyond the plain limits or a large waiver: a proposal)",
    "approval.plan": "approve or reject a proposed plan",
    "approval.closure": "approve or reject a proposed closure for bankruptcy or death",
    "approval.release": "approve or reject a proposed complaint release",
    "operators.manage": "add and disable operators, issue and revoke tokens",
    "tasks.list": "read the floor's call and visit tasks (one's own)",
    "task.call": "open a call task: the contact gate decides now, and an allowed call shows the number",
    "tasks.manage": "read and work any operator's tasks",
    "calendars.read": "list the official calendar years added as data, pending and decided (the audit trail)",
    "calendars.add": "add a year's official calendar as data (validated as the loader does; pending until approved)",
    "calendars.approve": "approve or reject a calendar year another operator added (four-eyes)",
}

HOLD_PLACE = tuple(u for u in USE_CASES if u.startswith("hold.place."))
HOLD_RELEASE = tuple(u for u in USE_CASES if u.startswith("hold.release."))

# The table. A role not listed for a use case gets 403 and nothing changes.
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"case.read", "case.list", "payments.read", "approvals.list"}),
    "collector": frozenset(
        {
            "case.read",
            "case.list",
            "approvals.list",
            "outcome.call",
            "outcome.visit",
            "promise",
            "hold.place.hardship",
            "hold.place.dispute",
            "hold.place.cease_contact",
            "hold.release.hardship",
            "hold.release.cease_contact",
            "hold.place.bankruptcy",
            "hold.place.deceased",
            "tasks.list",
            "task.call",
            "plan.agree",
        }
    ),
    "payments": frozenset({"case.read", "payments.read", "payment.record", "payment.apply_unapplied", "payment.reverse"}),
    "supervisor": frozenset(
        {
            "case.read",
            "case.list",
            "payments.read",
            "approvals.list",
            "case.open",
            "contact.update",
            "plan.agree",
            "approval.plan",
            "case.close",
            "writeoff.confirm",
            "approval.close",
            "tasks.list",
            "task.call",
            "tasks.manage",
        }
    ),
    "legal": frozenset({"case.read", "case.list", "approvals.list", "outcome.court", "limitation.suspend"}),
    "compliance": frozenset(
        {
            "case.read",
            "case.list",
            "approvals.list",
            "hold.place.complaint",
            "hold.release.complaint",
            "hold.release.dispute",
            "hold.place.bankruptcy",
            "hold.place.deceased",
            "approval.closure",
            "approval.release",
            "calendars.read",
            "calendars.add",
            "calendars.approve",
        }
    ),
    "admin": frozenset({"operators.manage"}),
}

# Decisions that take two different people: what is proposed -> the use case whose role approves it.
TWO_PERSON: dict[str, str] = {
    "plan": "approval.plan",  # a waiver over approval.waiver_percent_over, a plan beyond the plain limits
    "closure": "approval.closure",  # bankruptcy or death (and so the borrower's other cases)
    "release": "approval.release",  # releasing a complaint hold
    "close": "approval.close",  # an operator's explicit closure, or a write-off confirmation
}


class Forbidden(Exception):
    """The caller's roles do not allow this; nothing was changed (HTTP 403, CLI exit 3)."""

    field = "authorization"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def roles_for(*use_cases: str) -> tuple[str, ...]:
    """The roles that may perform any of these use cases, in ROLES order."""
    unknown = [u for u in use_cases if u not in USE_CASES]
    if unknown:
        raise KeyError(f"unknown use case(s): {', '.join(unknown)}")
    return tuple(r for r in ROLES if PERMISSIONS[r] & set(use_cases))


def allowed(roles: Iterable[str], use_case: str) -> bool:
    return bool(set(roles) & set(roles_for(use_case)))


class Caller:
    """An authenticated operator: id, the roles held, and how they were authenticated (never the token)."""

    def __init__(
        self, operator_id: str, roles: Iterable[str], *, via: str = "token", token_id: str | None = None, name: str | None = None
    ) -> None:
        self.operator_id = operator_id
        self.roles = tuple(r for r in ROLES if r in set(roles))
        self.via, self.token_id, self.name = via, token_id, name

    def __repr__(self) -> str:
        return f"Caller({self.operator_id}, roles={','.join(self.roles)}, via={self.via})"

    def may(self, use_case: str) -> bool:
        return allowed(self.roles, use_case)

    def actor(self, use_case: str) -> Actor:
        """The actor for this use case (the first of the caller's roles that allows it), or Forbidden."""
        for role in roles_for(use_case):
            if role in self.roles:
                return Actor(operator_id=self.operator_id, role=role)
        needed = ", ".join(roles_for(use_case)) or "no role"
        raise Forbidden(
            f"{USE_CASES[use_case]} needs the role {needed}; operator {self.operator_id} has {', '.join(self.roles) or 'no role'}"
        )

    def require_any(self, use_cases: Iterable[str]) -> None:
        use_cases = tuple(use_cases)
        if not any(self.may(u) for u in use_cases):
            needed = ", ".join(roles_for(*use_cases)) or "no role"
            raise Forbidden(
                f"this needs one of the roles {needed}; operator {self.operator_id} has {', '.join(self.roles) or 'no role'}"
            )


def authorize(caller: Caller | None, use_case: str) -> Actor:
    """The one check: the caller's actor for `use_case`, or Forbidden. Every use case of the application
    layer calls this before it changes or reads anything."""
    if caller is None:
        raise Forbidden(f"{USE_CASES[use_case]} needs an authenticated operator")
    return caller.actor(use_case)


# ---- who is calling: set once by the entry point (the API's token check, the CLI's --token), read by
# every use case of the application layer through require(). In-process callers that are no operator
# (the demo loader, benchmarks, tests) leave it unset and act as `system`, recorded as such.

_CURRENT: ContextVar[Caller | None] = ContextVar("collections_caller", default=None)


class _System(Caller):
    def __init__(self) -> None:
        super().__init__("system", ROLES, via="internal")

    def actor(self, use_case: str) -> Actor:
        roles_for(use_case)
        return Actor(operator_id="system", role="system")


SYSTEM_CALLER: Caller = _System()

# What the borrower may do on their own page (app/selfservice.py), behind a message's link and its one-time code:
# read their case, promise, propose a plan (the case agrees one inside the policy's plain limits at once; beyond
# them it waits for a supervisor, as an operator's would), and place the holds that protect them. No operator
# role: a borrower is not an operator, and acts only on the loan their link is for.
BORROWER_USE_CASES = frozenset(
    {"case.read", "promise", "plan.agree", "hold.place.hardship", "hold.place.dispute", "hold.place.complaint"}
)


class _Borrower(Caller):
    def __init__(self, loan_id: str | None = None) -> None:
        super().__init__("borrower" if loan_id is None else f"borrower:{loan_id}", (), via="link")

    def may(self, use_case: str) -> bool:
        return use_case in BORROWER_USE_CASES

    def actor(self, use_case: str) -> Actor:
        if use_case not in BORROWER_USE_CASES:
            raise Forbidden(f"{USE_CASES[use_case]}: not something a borrower does on their own page")
        return Actor(operator_id=self.operator_id, role="self_service")


BORROWER_CALLER: Caller = _Borrower()


def borrower_caller(loan_id: str) -> Caller:
    """The borrower of `loan_id` on their own page or in a reply: the actor `borrower:<loan>` on what they do."""
    return _Borrower(loan_id)


def acting_as(caller: Caller | None):
    """Make `caller` the current operator of this task (returns the contextvar token to reset with)."""
    return _CURRENT.set(caller)


@contextmanager
def as_borrower(loan_id: str) -> Iterator[Caller]:
    """Within the block, the current caller is the borrower of `loan_id` (their page, their reply)."""
    token = _CURRENT.set(borrower_caller(loan_id))
    try:
        yield _CURRENT.get()  # type: ignore[misc]
    finally:
        _CURRENT.reset(token)


def current() -> Caller:
    return _CURRENT.get() or SYSTEM_CALLER


def require(use_case: str) -> Actor:
    """The check every use case makes before it reads or changes anything: the current caller's actor."""
    return authorize(current(), use_case)
