"""Which rules a run follows, chosen once when it starts: every rule of today for a new case; for a case whose
history began before a change, the rule it ran with, so that it replays as it ran. The workflow decides each from
the history's markers (workflows/versioning.py, where `workflow.patched` stays); the simulator and the tests take
today's (`CURRENT`). The rules before the legal clocks are domain/legacy.py's.

Pure: a value, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Regime:
    # the legal clocks as domain/legal.py counts them; False: the counting before them (domain/legacy.py,
    # versioning.LEGAL_CLOCKS)
    legal_clocks: bool = True
    # the credit-bureau notice's days counted as the law counts them (domain/legal.py notice_period); False:
    # delivery + N x 24 h (versioning.NOTICE_PERIOD)
    notice_counted: bool = True
    # a debt whose limitation period ran out stays so (民法典 art. 192, 195): our own demand neither revives it nor is
    # sent as if it were enforceable (versioning.TIME_BARRED)
    barred_stays: bool = True
    # a promise's or an instalment's last day on a rest day moves to the next working day (民法典 art. 203,
    # Case.count_pay_by); False: plain days (versioning.PAY_BY_REST_DAYS)
    pay_by_counted: bool = True
    # a part payment, promise or plan once a judgment or payment order is in force restarts the two years to apply
    # for enforcement (执行程序解释 art. 28, Case.restart_enforcement; versioning.ENFORCEMENT_RESTART)
    enforcement_interrupts: bool = True
    # a payment id names one payment: the same id with another amount is refused, not taken as a duplicate; a court's
    # enforcement result is keyed by its reference, so a resent one applies nothing (domain/inputs/payments.py;
    # versioning.PAYMENT_KEYS)
    payment_keys_checked: bool = True
    # an agreed plan is a restructuring with its observation period (Case.restructure, domain/risk.py); False: the
    # class stays by days past due (versioning.RESTRUCTURING)
    restructures: bool = True
    # True (the workflow, versioning.CALENDAR_RECORDED): the legal clocks count only with the calendar years this run
    # recorded (state.calendars, from a local activity), so that a year approved or changed while the case runs
    # cannot change what a replay computes. False: the process-wide calendar (the simulator, the tests).
    recorded_calendar: bool = False


CURRENT = Regime()
