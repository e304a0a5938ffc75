"""How simulated borrowers (and the people around a case: collectors, the court) answer the ladder.

Each borrower has a `Profile` (drawn once, from the loan's own generator) and a `Borrower` that sees
what the case actually did to them (the contact rows the real activities wrote: channel, action,
call outcome) and decides, with its own `random.Random`, what to do and when:

- after each kind of contact (sms, email, letter, call answered, visit met, lawyer's letter, credit
  bureau notice, court filing, letter to the guarantor) it may pay in full, pay part, promise to pay
  (and keep or break it), or agree a plan (instalments, deferral, interest waiver; kept or broken);
- it may also dispute the debt, ask for a hardship hold, or complain (more likely after an intrusive
  contact early on), and rarely goes bankrupt or dies;
- a message that carries the borrower page's link (an SMS, email or letter to the borrower, when the policy's
  `[selfservice] links` is on) may be opened: the borrower passes the one-time code and, on the page, pays by
  the payment link, promises, proposes a plan, declares hardship, disputes or complains, through the same
  updates (labelled `page_*`; their payments, and those keeping a promise or plan made there, carry the
  `SIMLINK-` id the report counts as self-service). These draws have their own generator, so a run without
  links is the run the model gave before the page existed;
- a collector reports each field visit a few days later, and the court gives a judgment some
  months after a lawsuit; enforcement recovers what the borrower's assets allow.

Everything the borrower does goes through the same updates operators use (`sim.run` applies the
`Update`s this module returns). Decisions depend only on the loan's generator and on what its own
case did, never on other loans or on wall-clock order, so a seed gives the same numbers every time.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar

from domain.models import CaseStatus, HoldIn, OutcomeIn, PaymentIn, PlanIn, PromiseIn, ReleaseIn
from domain.money import format_amount, parse_amount
from domain.policy import Policy
from sim.seeds import loan_rng

CURRENCY = "CNY"
YUAN = 100  # minor units per CNY

# What a contact is, for the borrower who gets it.
KINDS = ("sms", "email", "letter", "call", "visit", "law_firm", "bureau", "court", "guarantor", "agency")
# Chance that one contact of this kind moves a willing borrower (willingness 1, early, first contact) to act.
BASE = {
    "sms": 0.08,
    "email": 0.04,
    "letter": 0.10,
    "call": 0.35,
    "visit": 0.40,
    "law_firm": 0.25,
    "bureau": 0.20,
    "court": 0.35,
    "guarantor": 0.15,
    "agency": 0.10,
}
STATES_THE_DEBT = {"letter", "call", "visit", "law_firm", "bureau", "court"}  # a dispute answers these
INTRUSIVE = {"call", "visit", "law_firm", "court"}  # a complaint answers these
FATIGUE = 0.75  # each earlier contact of the same kind makes the next one less effective
EARLY_LEGAL_DPD = 45  # lawyers, courts and visits before this DPD draw more complaints

# The borrower page (borrower/): the messages that carry its link, and what a linked message makes a borrower do.
LINKED_KINDS = frozenset({"sms", "email", "letter"})  # activities.case.LINKED_CHANNELS, to the borrower (not guarantor)
# chance that one linked message is opened by this archetype (before fatigue and the code)
OPENS_LINK = {
    "forgetful": 0.14,
    "responsive": 0.09,
    "legal_sensitive": 0.03,
    "partial_payer": 0.06,
    "promise_breaker": 0.05,
    "hardship": 0.08,
    "disputer": 0.05,
    "complainer": 0.05,
    "skip": 0.005,
}
CODE_PASS = 0.85  # of those who open the link, the share who get and type the one-time code
LINK_FATIGUE = 0.8  # each earlier linked message makes the next one less likely to be opened
PAGE_PREFIX = "SIMLINK-"  # the payment id of a payment made through the page's payment link


def contact_kind(action: str) -> str | None:
    """The kind of contact an action is for the borrower (None: not a contact they react to)."""
    if action.endswith("@guarantor"):
        return "guarantor"
    base = action.split("@", 1)[0]
    if base in ("bureau_notice", "bureau_report"):
        return "bureau"
    if base in ("lawsuit", "payment_order"):
        return "court"
    if base == "agency_place":
        return "agency"
    if base in KINDS:
        return base
    return None


# ------------------------------------------------------------------------------------------ profiles


@dataclass(frozen=True)
class Profile:
    archetype: str
    willingness: float  # scales every chance of acting after a contact
    ability: float  # what they can pay: high pays in full, low asks for a plan or pays part
    answers_calls: float  # share of calls answered
    at_home: float  # share of field visits that find them
    keeps_promises: float
    plan_adherence: float  # chance of paying each instalment
    partial: float  # share of their answers that are part payments
    dispute: float  # per contact that states the debt
    complaint: float  # per intrusive contact
    hardship: float  # per contact: asks for a hardship hold
    self_cure: float  # daily chance of paying on their own while in M1
    assets: float  # what enforcement can seize, as a share of the debt
    boost: tuple[tuple[str, float], ...] = ()  # kind -> multiplier of BASE

    def weight(self, kind: str) -> float:
        return dict(self.boost).get(kind, 1.0)


# archetype: (willingness, ability, answers, at_home, keeps, adherence, partial, dispute, complaint, hardship,
#             self_cure, assets, boosts)
ARCHETYPES: dict[str, tuple] = {
    "forgetful": (
        0.95,
        0.9,
        0.8,
        0.7,
        0.9,
        0.95,
        0.05,
        0.001,
        0.002,
        0.0,
        0.04,
        0.9,
        {"sms": 4.0, "email": 4.0, "letter": 3.0, "call": 2.5},
    ),
    "responsive": (0.8, 0.7, 0.7, 0.65, 0.75, 0.85, 0.15, 0.003, 0.004, 0.005, 0.004, 0.7, {"call": 1.6, "visit": 1.5}),
    "legal_sensitive": (
        0.55,
        0.75,
        0.5,
        0.5,
        0.7,
        0.85,
        0.1,
        0.004,
        0.006,
        0.0,
        0.0,
        0.8,
        {
            "sms": 0.3,
            "email": 0.3,
            "letter": 0.5,
            "call": 0.5,
            "visit": 0.8,
            "law_firm": 2.6,
            "bureau": 2.6,
            "court": 2.4,
            "guarantor": 1.6,
        },
    ),
    "partial_payer": (0.65, 0.35, 0.6, 0.6, 0.6, 0.7, 0.8, 0.003, 0.004, 0.02, 0.002, 0.4, {}),
    "promise_breaker": (0.6, 0.45, 0.75, 0.6, 0.2, 0.45, 0.15, 0.003, 0.005, 0.01, 0.0, 0.5, {"call": 1.5, "visit": 1.5}),
    "hardship": (0.6, 0.12, 0.6, 0.7, 0.5, 0.55, 0.35, 0.003, 0.004, 0.15, 0.0, 0.15, {}),
    "disputer": (0.3, 0.6, 0.5, 0.5, 0.5, 0.7, 0.1, 0.12, 0.02, 0.0, 0.0, 0.6, {}),
    "complainer": (0.4, 0.6, 0.6, 0.5, 0.5, 0.7, 0.1, 0.01, 0.06, 0.0, 0.0, 0.6, {}),
    "skip": (0.08, 0.3, 0.05, 0.1, 0.2, 0.3, 0.3, 0.002, 0.002, 0.0, 0.0, 0.3, {}),
}
# archetype mix by DPD at the start: early debt is mostly forgetful or responsive, old debt is what is left
MIX = {
    "early": {
        "forgetful": 0.50,
        "responsive": 0.22,
        "legal_sensitive": 0.05,
        "partial_payer": 0.05,
        "promise_breaker": 0.05,
        "hardship": 0.04,
        "disputer": 0.02,
        "complainer": 0.02,
        "skip": 0.05,
    },
    "middle": {
        "forgetful": 0.08,
        "responsive": 0.16,
        "legal_sensitive": 0.16,
        "partial_payer": 0.12,
        "promise_breaker": 0.10,
        "hardship": 0.12,
        "disputer": 0.04,
        "complainer": 0.04,
        "skip": 0.18,
    },
    "late": {
        "forgetful": 0.02,
        "responsive": 0.10,
        "legal_sensitive": 0.20,
        "partial_payer": 0.12,
        "promise_breaker": 0.10,
        "hardship": 0.16,
        "disputer": 0.04,
        "complainer": 0.03,
        "skip": 0.23,
    },
}
SEGMENT_ABILITY = {"retail": 0.0, "sme": 0.12, "gig": -0.15, "premium": 0.18}


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return max(lo, min(hi, x))


def draw_profile(rng: random.Random, segment: str, start_dpd: int) -> Profile:
    band = "early" if start_dpd <= 30 else "middle" if start_dpd <= 90 else "late"
    r, acc, archetype = rng.random(), 0.0, "skip"
    for name, share in MIX[band].items():
        acc += share
        if r < acc:
            archetype = name
            break
    (w, ab, ans, home, keeps, adh, part, disp, comp, hard, cure, assets, boosts) = ARCHETYPES[archetype]

    def jitter(x: float, spread: float = 0.15) -> float:
        return _clamp(x * rng.uniform(1 - spread, 1 + spread))

    return Profile(
        archetype=archetype,
        willingness=jitter(w),
        ability=_clamp(jitter(ab) + SEGMENT_ABILITY.get(segment, 0.0), 0.02, 1.0),
        answers_calls=jitter(ans),
        at_home=jitter(home),
        keeps_promises=jitter(keeps),
        plan_adherence=jitter(adh, 0.05),
        partial=jitter(part),
        dispute=jitter(disp),
        complaint=jitter(comp),
        hardship=jitter(hard),
        self_cure=jitter(cure),
        assets=_clamp(jitter(assets) + (0.2 if segment in ("sme", "premium") else 0.0)),
        boost=tuple(sorted(boosts.items())),
    )


def call_script(profile: Profile, rng: random.Random, calls: int = 6) -> list[dict]:
    """How the borrower answers successive calls (the sandbox plays them in order, the last repeats)."""
    out = []
    if profile.archetype == "skip" and rng.random() < 0.5:
        return [{"outcome": "wrong_number"}]
    for i in range(calls):
        if profile.archetype == "disputer" and i == 0 and rng.random() < 0.3:
            out.append({"outcome": "dispute"})
        else:
            out.append({"outcome": "answered" if rng.random() < profile.answers_calls else "no_answer"})
    return out


# ------------------------------------------------------------------------------------------ decisions


@dataclass(order=True)
class Action:
    day: int
    seq: int
    kind: str = field(compare=False)  # respond, pay, promise, plan, hold, release, visit_report, court
    args: dict = field(compare=False, default_factory=dict)


@dataclass(frozen=True)
class Update:
    """One update to send to the case: the CollectionCase update's name and its input."""

    name: str  # record_payment | promise_to_pay | agree_plan | place_hold | release_hold | record_outcome
    arg: Any
    label: str  # what the report counts it as


def _amount_text(minor: int) -> str:
    return format_amount(minor, CURRENCY)


def _total(status: CaseStatus) -> int:
    return parse_amount(status.outstanding["total"], CURRENCY, allow_zero=True)


class Borrower:
    """One simulated borrower (and the collector and court around their case)."""

    ACTS: ClassVar[dict[str, Callable[..., Update | None]]] = {}  # filled below the class: kind -> method

    def __init__(self, loan, seed: int, policy: Policy, start: date, days: int) -> None:
        self.loan = loan
        self.p: Profile = loan.profile
        self.policy = policy
        self.start = start  # the borrower's local date on simulated day 0
        self.rng = loan_rng(seed, loan.loan_id, "behaviour")
        self.queue: list[Action] = []
        self._seq = 0
        self.seen: dict[str, int] = {}
        self.payments = 0
        self.responding = False  # an answer is already on its way: new contacts do not add another
        self.closed = False
        # the borrower page: its own generator, so that the rest of the model draws the same with or without links
        self.links = policy.selfservice.links
        self.page_rng = loan_rng(seed, loan.loan_id, "selfservice")
        self.opens_link = _clamp(OPENS_LINK.get(self.p.archetype, 0.0) * self.page_rng.uniform(0.7, 1.3))
        self.links_seen = 0
        self.on_page = False  # a page visit is on its way: another linked message adds none
        # what happens with no contact at all: paying on their own in M1, bankruptcy, death
        if self.p.self_cure > 0 and loan.start_dpd <= 30:
            day = self._geometric(self.p.self_cure)
            if loan.start_dpd + day <= 30 and day <= days:
                self.schedule(day, "pay", share=1.0, why="self_cure")
        bankrupt = self._geometric(0.00012 if loan.segment == "sme" else 0.00004)
        if bankrupt <= days:
            self.schedule(bankrupt, "hold", hold="bankruptcy", reference="insolvency notice")
        dead = self._geometric(0.00002)
        if dead <= days:
            self.schedule(dead, "hold", hold="deceased", reference="death certificate")

    # ---- the agenda

    def _geometric(self, p: float) -> int:
        """Days until an event with daily chance p (>= 1)."""
        if p <= 0:
            return 10**9
        u = 1.0 - self.rng.random()
        return 1 + int(math.log(u) / math.log1p(-p))

    def schedule(self, day: int, kind: str, **args) -> None:
        self._seq += 1
        heapq.heappush(self.queue, Action(day, self._seq, kind, args))

    def due(self, day: int) -> list[Action]:
        out = []
        while self.queue and self.queue[0].day <= day:
            out.append(heapq.heappop(self.queue))
        return out

    def has_due(self, day: int) -> bool:
        return bool(self.queue) and self.queue[0].day <= day and not self.closed

    def day_of(self, d: date) -> int:
        return (d - self.start).days

    def today(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def _lag(self, mean: float = 2.0, most: int = 7) -> int:
        return min(most, int(self.rng.expovariate(1 / mean)))

    # ---- what the case did to them

    def on_contact(self, day: int, action: str, status: str, outcome: str | None) -> None:
        """A contact row of their case (read from the database on simulated `day`)."""
        if self.closed or status != "delivered":
            return
        base = action.split("@", 1)[0]
        dpd = self.loan.start_dpd + day
        if base == "call":
            if outcome == "dispute":  # the case placed the dispute hold itself; someone resolves it later
                self.schedule(day + self.rng.randint(10, 45), "release", hold="dispute", resolution="debt confirmed")
                return
            if outcome != "answered":
                return
        if base == "visit":
            self.schedule(day + self.rng.randint(1, 4), "visit_report")
            return
        if base == "lawsuit" and self.rng.random() < 0.92:
            self.schedule(day + self.rng.randint(45, 120), "court", outcome="judgment")
        if base == "payment_order":
            issued = day + self.rng.randint(7, 20)
            self.schedule(issued, "court", outcome="payment_order_issued")
            if self.rng.random() < 0.15:
                self.schedule(issued + self.rng.randint(2, 10), "court", outcome="objection_filed")
        if base == "enforcement":
            if self.rng.random() < 0.6 * self.p.assets:  # seizable assets: some of the debt, rarely all of it
                got = day + self.rng.randint(30, 150)
                self.schedule(got, "court", outcome="enforcement_result", share=min(1.0, self.rng.uniform(0.1, 0.8)))
                self.schedule(got + self.rng.randint(10, 60), "court", outcome="enforcement_closed")
            else:
                self.schedule(day + self.rng.randint(90, 200), "court", outcome="enforcement_closed")
            return
        kind = contact_kind(action)
        if kind in LINKED_KINDS and self.links and self.opens_page(day):
            return
        if kind is not None:
            self.react(day, dpd, kind)

    def opens_page(self, day: int) -> bool:
        """Does this linked message bring the borrower to the page (opened, code passed)? Then the visit is scheduled."""
        n = self.links_seen
        self.links_seen = n + 1
        if self.on_page or self.responding:
            return False
        rng = self.page_rng
        if rng.random() >= self.opens_link * CODE_PASS * LINK_FATIGUE**n:
            return False
        self.on_page = True
        self.schedule(day + (0 if rng.random() < 0.6 else rng.randint(1, 3)), "page")
        return True

    def react(self, day: int, dpd: int, kind: str) -> None:
        """Decide what one contact of `kind` makes the borrower do."""
        p, rng = self.p, self.rng
        n = self.seen.get(kind, 0)
        self.seen[kind] = n + 1
        if kind in STATES_THE_DEBT and rng.random() < p.dispute:
            self.schedule(day + self._lag(1.0, 3), "hold", hold="dispute", reference=f"disputed after {kind}")
            return
        if kind in INTRUSIVE:
            early = 2.5 if (dpd < EARLY_LEGAL_DPD and kind in ("visit", "law_firm", "court")) else 1.0
            if rng.random() < p.complaint * early:
                # most complain to the bank; some ask it to stop contacting them (legal notices still go out)
                hold = "cease_contact" if rng.random() < 0.3 else "complaint"
                self.schedule(day + self._lag(1.0, 3), "hold", hold=hold, reference=f"{hold} after {kind}")
                return
        if p.ability < 0.35 and rng.random() < p.hardship:
            self.schedule(day + self._lag(1.0, 3), "hold", hold="hardship", reference="lost income")
            return
        decay = 1.0 if dpd <= 30 else max(0.25, 0.5 ** ((dpd - 30) / 200))
        chance = min(0.9, p.willingness * BASE[kind] * p.weight(kind) * decay * FATIGUE**n)
        if self.responding or rng.random() >= chance:
            return
        self.responding = True
        self.schedule(day + self._lag(), "respond", trigger=kind)

    # ---- acting: each returns the Update to send (or None), given the case's status now

    def answer(self, a: Action, status: CaseStatus) -> Update | None:
        if status.status == "closed":
            self.closed = True
            return None
        return self.ACTS[a.kind](self, a, status)

    def _respond(self, a: Action, status: CaseStatus) -> Update | None:
        self.responding = False
        p, rng = self.p, self.rng
        total = _total(status)
        plan_on = status.plan is not None and status.plan.status == "active"
        promise_on = status.promise is not None and status.promise.status == "active"
        weights = {
            "full": 0.85 * p.ability**1.5,
            "partial": p.partial,
            "promise": 0.0 if (plan_on or promise_on) else (0.7 if p.archetype == "promise_breaker" else 0.25),
            "plan": 0.0 if plan_on else 0.5 * (1 - p.ability),
        }
        choice = rng.choices(list(weights), weights=list(weights.values()))[0]
        return self._do(choice, a, status, total, rng)

    def _do(self, choice: str, a: Action, status: CaseStatus, total: int, rng: random.Random, via: str = "") -> Update | None:
        """The update for one choice (`via`: "page_" when made on the borrower page, which labels it)."""
        p = self.p
        if choice == "full":
            return self._pay_update(total, via + "pay_full", via)
        if choice == "partial":
            if rng.random() < (0.8 if p.archetype == "partial_payer" else 0.4):
                self.schedule(a.day + rng.randint(20, 45), "pay", share=rng.uniform(0.1, 0.4), why="pay_part", via=via)
            return self._pay_update(self._part(total, rng.uniform(0.1, 0.5)), via + "pay_part", via)
        if choice == "promise":
            ahead = rng.randint(1, self.policy.promise.max_days_ahead)
            amount = total if p.ability > 0.5 or rng.random() < 0.5 else self._part(total, rng.uniform(0.3, 0.7))
            return Update(
                "promise_to_pay", PromiseIn(amount=_amount_text(amount), date=self.today(a.day + ahead)), via + "promise"
            )
        update = self._plan(a, status)
        return None if update is None else Update(update.name, update.arg, via + update.label)

    def _page(self, a: Action, status: CaseStatus) -> Update | None:
        """On the borrower page (code passed): pay by the payment link, promise, propose a plan, or place a hold."""
        self.on_page = False
        p, rng = self.p, self.page_rng
        total = _total(status)
        plan_on = status.plan is not None and status.plan.status == "active"
        promise_on = status.promise is not None and status.promise.status == "active"
        held = {h.kind for h in status.holds}
        weights = {
            "full": 1.1 * p.ability**1.5,  # the payment link is one tap away
            "partial": p.partial,
            "promise": 0.0 if (plan_on or promise_on) else (0.7 if p.archetype == "promise_breaker" else 0.3),
            "plan": 0.0 if plan_on else 0.6 * (1 - p.ability),
            "hardship": 0.0 if "hardship" in held or p.ability >= 0.35 else min(0.5, 8 * p.hardship),
            "dispute": 0.0 if "dispute" in held else min(0.5, 4 * p.dispute),
            "complaint": 0.0 if "complaint" in held else min(0.5, 4 * p.complaint),
        }
        choice = rng.choices(list(weights), weights=list(weights.values()))[0]
        if choice in ("hardship", "dispute", "complaint"):
            until = None
            if choice == "hardship":
                most = self.policy.holds.max_hardship_days
                until = self.today(a.day) + timedelta(days=rng.randint(min(30, most), min(150, most)))
            hold = HoldIn(kind=choice, until=until, reference=f"{choice} declared on the borrower page")
            return Update("place_hold", hold, f"page_hold_{choice}")
        return self._do(choice, a, status, total, rng, via="page_")

    def _part(self, total: int, share: float) -> int:
        """A round part of the balance (whole hundreds of yuan when it can), never more than all of it."""
        part = int(total * share) // (100 * YUAN) * (100 * YUAN)
        return min(total, max(part, min(total, 100 * YUAN)))

    def _pay_update(self, amount: int, label: str, via: str = "") -> Update | None:
        if amount <= 0:
            return None
        self.payments += 1
        prefix = PAGE_PREFIX if via else "SIMPAY-"
        return Update(
            "record_payment",
            PaymentIn(payment_id=f"{prefix}{self.loan.loan_id}-{self.payments}", amount=_amount_text(amount), currency=CURRENCY),
            label,
        )

    def _pay(self, a: Action, status: CaseStatus) -> Update | None:
        total = _total(status)
        amount = a.args.get("amount")
        if amount is None:
            share = a.args.get("share", 1.0)
            amount = total if share >= 1.0 else self._part(total, share)
        via = a.args.get("via", "")
        return self._pay_update(min(int(amount), total), via + a.args.get("why", "pay"), via)

    def _plan(self, a: Action, status: CaseStatus) -> Update | None:
        p, rng, lim = self.p, self.rng, self.policy.plans
        today = self.today(a.day)
        interest = parse_amount(status.outstanding["interest"], CURRENCY, allow_zero=True)
        r = rng.random()
        if p.ability < 0.3 or r < 0.5:
            most = min(lim.max_instalments, lim.max_term_months)
            n = rng.randint(min(3, most), max(min(3, most), min(most, 12 if p.ability >= 0.3 else 24)))
            first = today + timedelta(days=rng.randint(7, lim.first_instalment_within_days))
            plan = PlanIn(kind="instalments", instalments=max(2, n), first_due=first)
        elif r < 0.8 or interest == 0 or lim.max_interest_waiver_percent == 0:
            plan = PlanIn(
                kind="deferral", until=today + timedelta(days=rng.randint(min(30, lim.max_deferral_days), lim.max_deferral_days))
            )
        else:
            plan = PlanIn(
                kind="interest_waiver",
                waiver_percent=rng.randint(1, lim.max_interest_waiver_percent),
                pay_by=today + timedelta(days=rng.randint(min(7, lim.waiver_pay_within_days), lim.waiver_pay_within_days)),
            )
        return Update("agree_plan", plan, f"plan_{plan.kind}")

    def _hold(self, a: Action, status: CaseStatus) -> Update | None:
        kind = a.args["hold"]
        if any(h.kind == kind for h in status.holds):
            return None
        until = None
        if kind == "hardship":
            most = self.policy.holds.max_hardship_days
            until = self.today(a.day) + timedelta(days=self.rng.randint(min(30, most), min(150, most)))
        return Update("place_hold", HoldIn(kind=kind, until=until, reference=a.args.get("reference", "")), f"hold_{kind}")

    def _release(self, a: Action, status: CaseStatus) -> Update | None:
        kind = a.args["hold"]
        if not any(h.kind == kind for h in status.holds):
            return None
        reviewer = "Compliance reviewer (simulated)" if kind == "complaint" else None
        return Update(
            "release_hold", ReleaseIn(kind=kind, reviewer=reviewer, resolution=a.args.get("resolution", "")), f"release_{kind}"
        )

    def _visit_report(self, a: Action, status: CaseStatus) -> Update | None:
        p, rng = self.p, self.rng
        if rng.random() < p.at_home:
            outcome = "met_borrower"
            self.react(a.day, self.loan.start_dpd + a.day, "visit")
        elif p.archetype == "skip" and rng.random() < 0.5:
            outcome = "moved"
        else:
            outcome = "not_home" if rng.random() < 0.8 else "refused"
        return Update("record_outcome", OutcomeIn(kind="visit", outcome=outcome, reference="field report"), f"visit_{outcome}")

    def _court(self, a: Action, status: CaseStatus) -> Update | None:
        outcome = a.args["outcome"]
        amount = None
        if outcome == "enforcement_result":
            amount = min(_total(status), max(YUAN, int(_total(status) * a.args["share"]) // YUAN * YUAN))
            if amount <= 0:
                return None
            amount = _amount_text(amount)
        dates = {}
        if outcome in ("judgment", "payment_order_issued"):  # the dates the legal clocks count from (domain/legal.py)
            today = self.start + timedelta(days=a.day)
            dates = (
                dict(effective_on=today, performance_ends=today + timedelta(days=10))
                if outcome == "judgment"
                else dict(served_on=today)
            )
        return Update(
            "record_outcome",
            OutcomeIn(kind="court", outcome=outcome, amount=amount, reference=f"court {self.loan.loan_id}", **dates),
            f"court_{outcome}",
        )

    # ---- after the case answered

    def accepted(self, a: Action, update: Update, result: Any) -> None:
        """Schedule what follows an accepted update (keeping a promise, instalments, releasing a hold)."""
        rng, p = self.rng, self.p
        if getattr(result, "outcome", None) is not None or getattr(result, "status", None) == "closed":
            self.closed = True
            return
        # a promise or plan made on the page is kept through its payment link
        via = "page_" if update.label.startswith("page_") else ""
        if update.name == "promise_to_pay":
            promised = parse_amount(update.arg.amount, CURRENCY)
            on = self.day_of(update.arg.date)
            if rng.random() < p.keeps_promises:
                self.schedule(max(a.day, on - rng.randint(0, 2)), "pay", amount=promised, why="promise_kept", via=via)
            elif rng.random() < 0.3:
                self.schedule(on, "pay", amount=max(YUAN, promised // 3 // YUAN * YUAN), why="promise_part", via=via)
        elif update.name == "agree_plan":
            for due, amount in result.schedule:
                if rng.random() >= p.plan_adherence:
                    break
                self.schedule(
                    max(a.day, self.day_of(due) - rng.randint(0, 3)),
                    "pay",
                    amount=parse_amount(amount, CURRENCY),
                    why="plan_payment",
                    via=via,
                )
        elif update.name == "place_hold":
            kind = update.arg.kind
            if kind == "dispute":
                self.schedule(a.day + rng.randint(10, 45), "release", hold="dispute", resolution="debt confirmed")
            elif kind == "complaint":
                self.schedule(a.day + rng.randint(7, 30), "release", hold="complaint", resolution="reviewed")
            elif kind == "hardship" and rng.random() < 0.5:
                self.schedule(self.day_of(update.arg.until), "respond", trigger="hardship_end")
                self.responding = True


# What a scheduled action does, by its kind: each Borrower method returns the Update to send (or None). A subclass
# with kinds of its own extends it ({**Borrower.ACTS, ...}).
Borrower.ACTS = {
    "respond": Borrower._respond,
    "page": Borrower._page,
    "pay": Borrower._pay,
    "plan": Borrower._plan,
    "hold": Borrower._hold,
    "release": Borrower._release,
    "visit_report": Borrower._visit_report,
    "court": Borrower._court,
}
