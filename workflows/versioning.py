"""Which version of the case's code a run follows: every change decided once, at the run's start.

Why not `workflow.patched()` where a change takes effect. The server records a local activity's
marker with the workflow task that was open when the activity finished. Core may complete that task
(and ask for a new one) before the workflow code has seen the result: the code then goes on in the
next task. On replay core hands the result over inside the first task, so code that follows a local
activity runs one task earlier than it did. `patched()` answers from the markers of the task being
replayed: a marker that the original run wrote in the next task is not known yet, the call answers
False, and the marker then meets no command ("Non-deprecated patch marker encountered ... but there is
no corresponding change command"). The demo hit it on its first send, which follows the gate's local
activity (tests/histories/race_*: recorded from the demo).

So, from `DECIDED_AT_START` on, a run asks `patched()` only in its first activation, before any
activity, where no race can move it: a new change is one more flag set there, and a running case keeps
the code it began with until it ends or continues as new (a new run decides again).

Runs that began before (no `DECIDED_AT_START` marker) ask as they always did, where the change takes
effect (`Versions.mid_run`). A run whose policy carries the agent rules (`Policy.agent`, 2376dcd) was
started by code that had all five older changes (each is an ancestor of that commit), so its history
holds each marker where the change first took effect; when replay reaches that point before core has
announced the marker, it is the race above, and the marker is taken as known (`_known`), with the
TemporalChangeVersion search attribute that core writes beside it. Runs from before agent mode (the
recorded histories in tests/histories/ among them) ask `patched()` plainly, as they ran.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from domain.models import CaseInput
    from domain.regime import Regime

# Decided in the first activation: this run asks every later change there, and nowhere else.
DECIDED_AT_START = "changes-decided-at-start"

# The changes from before DECIDED_AT_START, each asked where it takes effect by runs that began before it.
LEGAL_CLOCKS = "legal-clocks-as-the-law-counts-them"
WRITE_OFF_PROPOSAL = "write-off-is-an-accounting-event"
FOUR_EYES = "four-eyes-approval"
BORROWER_CLOSURE = "borrower-bankrupt-or-deceased-closes-every-loan"
SEND_RECHECK = "send-rechecks-window-on-every-attempt"

# Decided at start (DECIDED_AT_START's runs only): the case row in the database follows every change of the
# case's stage, status and balances (a project_case local activity), not only its sends and payments.
PROJECTION = "projection-follows-the-case"
# Decided at start: signals are inputs (the updates' names and JSON); one the case refuses, or cannot read, is
# recorded as rejected (workflows/case.py CollectionCase.signalled). Runs without it take no signal (they ran so).
SIGNALS = "signals-are-inputs"
# Decided at start: the credit-bureau report waits until 24:00 of the notice period's last day, moved past rest days
# (domain/legal.py notice_period), not delivery + N x 24 h.
NOTICE_PERIOD = "bureau-report-after-the-notice-periods-last-day"
# Decided at start: the legal clocks count with the calendar years the run recorded (a calendar_years local activity,
# domain.case.Case.calendar_years_to_ask), not with whatever calendar the worker holds when the code replays.
CALENDAR_RECORDED = "legal-clocks-count-with-recorded-calendars"
# Decided at start: a debt whose limitation period ran out stays time-barred: our own demand does not restart it, the
# lawyer's letter and filings are refused (rule time_barred), and the messages say repaying is voluntary.
TIME_BARRED = "a-time-barred-debt-stays-time-barred"
# Decided at start: a promise's or an instalment's last day to pay on a rest day moves to the next working day
# (民法典 art. 203; domain.case.Case.count_pay_by), unless the policy's terms keep the dates (art. 204).
PAY_BY_REST_DAYS = "pay-by-dates-move-past-rest-days"
# Decided at start: a part payment, promise or plan after a judgment or payment order restarts the period to apply for
# enforcement (执行程序解释 art. 28; domain.case.Case.restart_enforcement).
ENFORCEMENT_RESTART = "enforcement-period-restarts-on-part-payment"
# Decided at start: a payment id names one amount (the same id with another is refused, not a silent duplicate), and
# a court's enforcement result is keyed by its reference (domain/inputs/payments.py check_payment, enforcement_key).
PAYMENT_KEYS = "a-payment-key-names-one-payment"
# Decided at start: past a number of refused signals in one run, the rest are counted, not recorded one by one (one
# notice says so), and a refused signal wakes the loop when the history is due to continue as new.
SIGNAL_FLOOD = "refused-signals-capped-per-run"
# Decided at start: an agreed plan is a restructuring (domain.case.Case._restructure, domain/risk.py restructured);
# a run from before it keeps the days-past-due class it had.
RESTRUCTURING = "plans-are-restructurings"
# Decided at start: a step's gate check and the first attempt at each of its sends are one local activity (run_step:
# one transaction before the gateway, one after), not a check_contacts and one channel activity per send; a send the
# gateway could not take is sent again on its own, as before.
STEP_SENDS = "a-step-in-two-transactions"

OLDER = (LEGAL_CLOCKS, WRITE_OFF_PROPOSAL, FOUR_EYES, BORROWER_CLOSURE, SEND_RECHECK)

CHANGE_VERSION = SearchAttributeKey.for_keyword_list("TemporalChangeVersion")


class Versions:
    """The run's answers. Construct it in the workflow's __init__ (its first activation)."""

    def __init__(self, inp: CaseInput) -> None:
        self.at_start = workflow.patched(DECIDED_AT_START)
        # started by code with agent mode, which had every older change (the docstring): its markers are there
        self.had_older = "agent" in inp.policy.model_fields_set
        # a run decided at start has every change from before it; the older ones asked as they were
        self.legal_clocks = self.at_start or workflow.patched(LEGAL_CLOCKS)
        # the changes since, each decided here and only for runs decided at start
        self.projection = self.at_start and workflow.patched(PROJECTION)
        self.signals = self.at_start and workflow.patched(SIGNALS)
        self.notice_period = self.at_start and workflow.patched(NOTICE_PERIOD)
        self.calendar_recorded = self.at_start and workflow.patched(CALENDAR_RECORDED)
        self.time_barred = self.at_start and workflow.patched(TIME_BARRED)
        self.pay_by_rest_days = self.at_start and workflow.patched(PAY_BY_REST_DAYS)
        self.enforcement_restart = self.at_start and workflow.patched(ENFORCEMENT_RESTART)
        self.payment_keys = self.at_start and workflow.patched(PAYMENT_KEYS)
        self.signal_flood = self.at_start and workflow.patched(SIGNAL_FLOOD)
        self.restructuring = self.at_start and workflow.patched(RESTRUCTURING)
        self.step_sends = self.at_start and workflow.patched(STEP_SENDS)

    def regime(self) -> Regime:
        """The rules the case follows in this run (domain/regime.py), from the answers above."""
        return Regime(
            legal_clocks=self.legal_clocks,
            notice_counted=self.notice_period,
            barred_stays=self.time_barred,
            pay_by_counted=self.pay_by_rest_days,
            enforcement_interrupts=self.enforcement_restart,
            payment_keys_checked=self.payment_keys,
            restructures=self.restructuring,
            recorded_calendar=self.calendar_recorded,
        )

    def mid_run(self, change: str) -> bool:
        """A change from before DECIDED_AT_START, asked where it takes effect (True for a run decided at start)."""
        assert change in OLDER, f"{change}: a new change is decided in Versions.__init__, not mid-run"
        if self.at_start:
            return True
        if self.had_older:
            _known(change)
        return workflow.patched(change)


def _known(change: str) -> None:
    """While replaying, take the change's marker as known although core has not announced it yet (it lies in the
    next workflow task: the race in the module's docstring), and write the change-version attribute as core does.
    Reaches into the SDK's workflow instance (pinned temporalio; tests/test_replay.py guards both attributes)."""
    if not workflow.unsafe.is_replaying():
        return
    inst = workflow._Runtime.current()
    memo: dict[str, bool] = inst._patches_memoized  # type: ignore[attr-defined]
    notified: set[str] = inst._patches_notified  # type: ignore[attr-defined]
    if change in memo or change in notified:
        return
    notified.add(change)
    workflow.patched(change)
    workflow.upsert_search_attributes([CHANGE_VERSION.value_set(sorted(k for k, v in memo.items() if v))])
