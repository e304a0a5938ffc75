"""The inputs a chaos run sends (bench/chaos.py): each case's model and script, the driver that sends them (in
process, or through the API from client processes: bench/chaos_http.py) and its counters."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from temporalio.client import Client  # noqa: E402

from app import errors, inputs  # noqa: E402
from db.repo import Repo  # noqa: E402
from domain.dates import local_date  # noqa: E402
from domain.money import format_amount  # noqa: E402

TASK_QUEUE = "collections-chaos"
TZ = "Asia/Shanghai"
CUR = "CNY"
KEY_ID = "chaos-only"
INPUT_GIVE_UP = 300.0  # an input still unanswered this long after the chaos is reported as unresolved
KINDS = ("quiet", "partial", "full", "promise", "promise_kept", "waiver", "instalments", "hold", "hold_release", "bad")


@dataclass
class Model:
    """What the run told a case and what it answered: the expected state follows from this."""

    loan_id: str
    kind: str
    principal: int
    interest: int
    fees: int
    dpd: int
    borrower_id: str = ""
    applied: dict[str, int] = field(default_factory=dict)  # payment id -> amount, acknowledged as applied
    unapplied: dict[str, int] = field(default_factory=dict)  # acknowledged as kept unapplied (no open case)
    refused: dict[str, str] = field(default_factory=dict)  # input -> "field: reason"
    refused_payment_ids: set[str] = field(default_factory=set)
    promise: int | None = None
    plan: str | None = None
    waived: int = 0
    holds: set[str] = field(default_factory=set)
    unresolved: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # an answer that was not the expected one
    sent: int = 0
    retries: int = 0

    def __post_init__(self) -> None:
        self.borrower_id = self.borrower_id or f"B-{self.loan_id}"

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.fees

    @property
    def paid(self) -> int:
        return sum(self.applied.values())


@dataclass
class Counters:
    inputs: int = 0
    attempts: int = 0
    retried: int = 0
    refused: int = 0
    duplicates: int = 0
    unresolved: int = 0
    errors: Counter = field(default_factory=Counter)
    per_input: list[int] = field(default_factory=list)  # attempts of each input that got an answer

    def merge(self, other: Counters) -> None:
        for name in ("inputs", "attempts", "retried", "refused", "duplicates", "unresolved"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)
        self.per_input += other.per_input

    def attempts_per_input(self) -> tuple[float, int]:
        """Mean and 99th percentile of the attempts an acknowledged input took."""
        xs = sorted(self.per_input)
        if not xs:
            return 0.0, 0
        return sum(xs) / len(xs), xs[min(len(xs) - 1, int(0.99 * len(xs)))]


class InProcess:
    """Inputs through the application layer in this process (app.inputs), as the CLI sends them: each one
    answered within `deadline` seconds by app.inputs.answered (attempts under the same update ids)."""

    deadline = 30.0
    timeout = 40.0  # one attempt of the caller's, around `answered`

    def __init__(self, client: Client, repo: Repo) -> None:
        self.client, self.repo = client, repo

    async def _answered(self, make: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await inputs.answered(make, self.deadline)
        except inputs.Unanswered as exc:
            raise Unanswered503(exc.reason, exc.retry_after) from None

    async def pay(self, loan: str, pid: str, amount: str) -> tuple[str, bool, str | None]:
        res = await self._answered(
            lambda: inputs.send_update(self.client, loan, "pay", {"payment_id": pid, "amount": amount, "currency": CUR})
        )
        return "applied", res.duplicate, res.applied

    async def record_payment(self, loan: str, pid: str, amount: str) -> str:
        res = await self._answered(lambda: inputs.record_payment(self.client, self.repo, loan, payment_id=pid, amount=amount))
        return res.status

    async def update(self, loan: str, command: str, fields: dict) -> Any:
        return await self._answered(lambda: inputs.send_update(self.client, loan, command, fields))

    async def approve(self, loan: str) -> Any:  # in process the caller is the system: nothing waits for approval
        raise AssertionError("nothing waits for approval in process")

    async def finished(self, loan: str) -> bool:
        return await asyncio.wait_for(inputs.open_run(self.client, loan), 10) is None


class Unanswered503(Exception):
    """No answer in time (HTTP 503 with Retry-After, or app.inputs.Unanswered): send again after `retry_after`."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Driver:
    """Sends one case's inputs through a backend (InProcess, or bench.chaos_http.Http), each until it gets an
    answer."""

    def __init__(self, backend: Any, counters: Counters) -> None:
        self.backend = backend
        self.c = counters
        self.give_up_at: float | None = None  # set when the chaos ends: inputs are sent until answered till then

    async def _send(
        self, m: Model, what: str, call: Callable[[], Awaitable[Any]], settled_by: tuple[str, ...] = ()
    ) -> tuple[str, Any]:
        """("ok", result) | ("refused", BadInput) | ("settled", BadInput) | ("unresolved", None).

        `settled_by`: fragments of a refusal that, after an unanswered attempt, mean the first
        attempt did get through (e.g. "already on a dispute hold")."""
        self.c.inputs += 1
        m.sent += 1
        ambiguous = False
        attempt = 0
        while True:
            attempt += 1
            self.c.attempts += 1
            try:
                res = await asyncio.wait_for(call(), self.backend.timeout)
                self.c.per_input.append(attempt)
                return "ok", res
            except errors.BadInput as exc:
                self.c.per_input.append(attempt)
                if ambiguous and any(f in exc.reason for f in settled_by):
                    return "settled", exc
                self.c.refused += 1
                return "refused", exc
            except Exception as exc:  # noqa: BLE001 - no answer: worker dead, server down, timeout
                ambiguous = True
                self.c.errors[type(exc).__name__] += 1
                if attempt == 2:
                    self.c.retried += 1
                m.retries += 1
                if self.give_up_at is not None and time.monotonic() > self.give_up_at:
                    self.c.unresolved += 1
                    m.unresolved.append(f"{what}: no answer after {attempt} attempts ({type(exc).__name__}: {exc})")
                    return "unresolved", None
                await asyncio.sleep(getattr(exc, "retry_after", None) or min(0.5 * attempt, 3.0))

    async def pay(self, m: Model, pid: str, minor: int) -> None:
        """A payment to the open case (in process: its `pay` update; over HTTP: the payment notification)."""
        amount = format_amount(minor, CUR)
        status, res = await self._send(m, f"payment {pid} {amount}", lambda: self.backend.pay(m.loan_id, pid, amount))
        if status == "ok":
            kept, duplicate, applied = res
            if duplicate:
                self.c.duplicates += 1
            if kept != "applied":
                m.unapplied[pid] = minor
                m.unexpected.append(f"payment {pid}: kept {kept}, expected applied")
                return
            m.applied[pid] = minor
            if applied is not None and applied != amount:
                m.unexpected.append(f"payment {pid}: answered applied {applied}, sent {amount}")
        elif status == "refused":
            if isinstance(res, errors.NotFound):
                # the case's workflow has finished (this very payment, sent before without an answer, may be what
                # closed it): ask again as the API and `starter.py pay` do, through the ledger
                await self.pay_after_close(m, pid, minor, expect="applied")
                return
            m.refused[f"payment {pid}"] = str(res)
            m.refused_payment_ids.add(pid)
            m.unexpected.append(f"payment {pid} refused: {res}")

    async def pay_after_close(self, m: Model, pid: str, minor: int, expect: str = "unapplied") -> None:
        """A payment notification for a loan whose case has closed: kept in the ledger as unapplied."""
        amount = format_amount(minor, CUR)
        status, res = await self._send(
            m, f"late payment {pid} {amount}", lambda: self.backend.record_payment(m.loan_id, pid, amount)
        )
        if status == "ok":
            (m.applied if res == "applied" else m.unapplied)[pid] = minor
            if res != expect:
                m.unexpected.append(f"late payment {pid}: answered {res}, expected {expect}")
        elif status == "refused":
            m.refused_payment_ids.add(pid)
            m.unexpected.append(f"late payment {pid} refused: {res}")

    async def closed(self, m: Model, timeout: float = INPUT_GIVE_UP) -> None:
        """Wait until the case's workflow has finished (after its closing actions), as a later payment would."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if await self.backend.finished(m.loan_id):
                    return
            await asyncio.sleep(1)
        m.unexpected.append(f"the case's workflow had not finished {timeout:.0f}s after its last payment")

    async def bad_payment(self, m: Model, pid: str, amount: str, currency: str, field_: str) -> None:
        fields = {"payment_id": pid, "amount": amount, "currency": currency}
        status, res = await self._send(m, f"bad payment {pid}", lambda: self.backend.update(m.loan_id, "pay", fields))
        m.refused_payment_ids.add(pid)
        if status == "refused" and res.field == field_:
            m.refused[f"payment {pid}"] = str(res)
        elif status != "unresolved":
            m.unexpected.append(f"bad payment {pid} ({amount} {currency}): answered {status} {res}")

    async def update(
        self, m: Model, command: str, fields: dict, settled_by: tuple[str, ...] = (), expect_refusal: str | None = None
    ) -> Any:
        status, res = await self._send(
            m, f"{command} {fields}", lambda: self.backend.update(m.loan_id, command, fields), settled_by
        )
        if expect_refusal is not None:
            if status == "refused" and res.field == expect_refusal:
                m.refused[command] = str(res)
            elif status != "unresolved":
                m.unexpected.append(f"{command} {fields}: answered {status} {res}, expected a refusal of {expect_refusal}")
            return None
        if status == "refused":
            m.unexpected.append(f"{command} {fields} refused: {res}")
            return None
        if (status == "ok" and getattr(res, "accepted", True) is False) or (
            status == "settled" and "a proposal is already waiting" in res.reason
        ):
            # proposed (an operator's complaint release, a large waiver): a second operator approves it
            ok, ans = await self._send(
                m, f"approve {command}", lambda: self.backend.approve(m.loan_id), settled_by=("nothing waits for approval",)
            )
            if ok not in ("ok", "settled"):
                m.unexpected.append(f"approval of {command}: answered {ok} {ans}")
                return None
        return res if status in ("ok", "settled") else None


def tomorrow() -> dt.date:
    # the case's calendar is the real one (only DPD is compressed): dates a day ahead stay valid all run
    return local_date(dt.datetime.now(dt.UTC), TZ) + dt.timedelta(days=1)


async def script(d: Driver, m: Model, times: list[float], t0: float) -> None:
    """The case's inputs, each at its moment (relative to t0), one after another, as its kind's script says."""
    it = iter(times)

    async def at() -> None:
        delay = t0 + next(it) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    kind_script = _SCRIPTS.get(m.kind)  # a quiet case has none: it gets no input
    if kind_script is not None:
        await kind_script(d, m, at)


def _pid(m: Model, n: object) -> str:
    """The payment id of the case's n-th payment (the same n is the same payment, resent)."""
    return f"PAY-{m.loan_id}-{n}"


_At = Callable[[], Awaitable[None]]  # waits for the script's next moment


async def _partial(d: Driver, m: Model, at: _At) -> None:
    """Two payments, the first sent again beside the second and once more after: each applied once."""
    total = m.total
    p1, p2 = total * 2 // 10, total // 10
    await at()
    await d.pay(m, _pid(m, 1), p1)
    await at()
    await asyncio.gather(d.pay(m, _pid(m, 1), p1), d.pay(m, _pid(m, 2), p2))  # a duplicate beside a new one
    await at()
    await d.pay(m, _pid(m, 1), p1)


async def _full(d: Driver, m: Model, at: _At) -> None:
    """A payment sent twice at once, then the rest twice: the case closes paid; the same payment once it has closed
    is answered as applied, a new one kept as unapplied."""
    total = m.total
    p1 = total * 4 // 10
    await at()
    await asyncio.gather(d.pay(m, _pid(m, 1), p1), d.pay(m, _pid(m, 1), p1))  # the same payment twice at once
    await at()
    await d.pay(m, _pid(m, 2), total - p1)
    await at()
    await d.pay(m, _pid(m, 2), total - p1)  # again: the same answer
    await d.closed(m)
    await d.pay_after_close(m, _pid(m, 2), total - p1, expect="applied")  # again, once the case has closed
    await d.pay_after_close(m, _pid(m, 3), 10_000)  # a new one: kept as unapplied


async def _promise(d: Driver, m: Model, at: _At) -> None:
    """A promise of 30% due tomorrow; `promise_kept` then pays it, twice."""
    total = m.total
    amount = total * 3 // 10
    await at()
    if (
        await d.update(m, "promise", {"amount": format_amount(amount, CUR), "date": tomorrow()}, settled_by=("already active",))
        is not None
    ):
        m.promise = amount
    if m.kind == "promise_kept":
        await at()
        await d.pay(m, _pid(m, 1), amount)
        await d.pay(m, _pid(m, 1), amount)


async def _waiver(d: Driver, m: Model, at: _At) -> None:
    """A 30% interest waiver (it may wait for a second person), then, once agreed, the rest paid twice."""
    total = m.total
    await at()
    res = await d.update(
        m,
        "plan",
        {"kind": "interest_waiver", "waiver_percent": 30, "pay_by": tomorrow()},
        settled_by=("already active", "a proposal is already waiting"),
    )
    if res is not None:
        m.plan, m.waived = "interest_waiver", m.interest * 30 // 100
        await at()
        await d.pay(m, _pid(m, 1), total - m.waived)
        await d.pay(m, _pid(m, 1), total - m.waived)


async def _instalments(d: Driver, m: Model, at: _At) -> None:
    """Six monthly instalments from tomorrow, then the first one paid."""
    total = m.total
    await at()
    res = await d.update(
        m, "plan", {"kind": "instalments", "instalments": 6, "first_due": tomorrow()}, settled_by=("already active",)
    )
    if res is not None:
        m.plan = "instalments"
        await at()
        await d.pay(m, _pid(m, 1), total // 6)


async def _hold(d: Driver, m: Model, at: _At) -> None:
    """A dispute hold, then a second one, which is refused (field `kind`)."""
    await at()
    if (
        await d.update(
            m,
            "hold",
            {"kind": "dispute", "reference": "borrower disputes the fees"},
            settled_by=("already on a dispute hold",),
        )
        is not None
    ):
        m.holds.add("dispute")
    await at()
    await d.update(m, "hold", {"kind": "dispute"}, expect_refusal="kind")


async def _hold_release(d: Driver, m: Model, at: _At) -> None:
    """A complaint hold, then its release by a reviewer (it may wait for a second person)."""
    await at()
    if (
        await d.update(
            m,
            "hold",
            {"kind": "complaint", "reference": "complaint about a call"},
            settled_by=("already on a complaint hold",),
        )
        is not None
    ):
        m.holds.add("complaint")
    await at()
    if (
        await d.update(
            m,
            "release",
            {"kind": "complaint", "reviewer": "Chaos Reviewer"},
            settled_by=("no complaint hold", "a proposal is already waiting"),
        )
        is not None
    ):
        m.holds.discard("complaint")


async def _bad(d: Driver, m: Model, at: _At) -> None:
    """Inputs the case must refuse: an overpayment, a foreign currency, a release of a hold it is not on, a promise
    dated in the past."""
    total = m.total
    await at()
    await d.bad_payment(m, _pid(m, "over"), format_amount(total + 10_000, CUR), CUR, "amount")
    await at()
    await d.bad_payment(m, _pid(m, "usd"), "10.00", "USD", "currency")
    await d.update(m, "release", {"kind": "dispute"}, expect_refusal="kind")
    await d.update(m, "promise", {"amount": "10.00", "date": tomorrow() - dt.timedelta(days=3)}, expect_refusal="date")


_SCRIPTS: dict[str, Callable[[Driver, Model, _At], Awaitable[None]]] = {
    "partial": _partial,
    "full": _full,
    "promise": _promise,
    "promise_kept": _promise,
    "waiver": _waiver,
    "instalments": _instalments,
    "hold": _hold,
    "hold_release": _hold_release,
    "bad": _bad,
}


INPUTS_PER_KIND = {
    "quiet": 0,
    "partial": 3,
    "full": 3,
    "promise": 1,
    "promise_kept": 2,
    "waiver": 2,
    "instalments": 2,
    "hold": 2,
    "hold_release": 2,
    "bad": 2,
}


# ---------------------------------------------------------------------------- checks
