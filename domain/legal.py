"""The legal clocks of a case, counted as the law counts them. Pure: no I/O but the calendar files.

Each clock names its source beside its code. The texts were read (November 2026) in these sources:

- 《中华人民共和国民法典》 (Civil Code, 2020):
  art. 188: 诉讼时效期间为三年 ... 自权利人知道或者应当知道权利受到损害以及义务人之日起计算;
  art. 189: 当事人约定同一债务分期履行的, 诉讼时效期间自最后一期履行期限届满之日起计算;
  art. 194: 在诉讼时效期间的最后六个月内, 因下列障碍, 不能行使请求权的, 诉讼时效中止: (一) 不可抗力; (二) 无民事行为能力人
            或者限制民事行为能力人没有法定代理人 ...; (三) 继承开始后未确定继承人或者遗产管理人; (四) 权利人被义务人或者其他人
            控制; (五) 其他导致权利人不能行使请求权的障碍。自中止时效的原因消除之日起满六个月, 诉讼时效期间届满;
  art. 195: 诉讼时效中断, 从中断、有关程序终结时起, 诉讼时效期间重新计算: (一) 权利人向义务人提出履行请求;
            (二) 义务人同意履行义务; (三) 权利人提起诉讼或者申请仲裁; (四) 与提起诉讼或者申请仲裁具有同等效力的
            其他情形 (an application for a payment order is one, as the commentaries on art. 195 list);
  art. 201: 按照年、月、日计算期间的, 开始的当日不计入, 自下一日开始计算;
  art. 202: 按照年、月计算期间的, 到期月的对应日为期间的最后一日; 没有对应日的, 月末日为期间的最后一日;
  art. 203: 期间的最后一日是法定休假日的, 以法定休假日结束的次日为期间的最后一日。
            期间的最后一日的截止时间为二十四时.
- 《中华人民共和国民事诉讼法》 (Civil Procedure Law, as amended 2023, in force 1 January 2024):
  art. 85: 期间开始的时和日, 不计算在期间内。期间届满的最后一日是法定休假日的, 以法定休假日后的第一日为期间届满的日期
           (text read in the 2021 numbering, art. 85; no dated copy of the 2023 text of this article was found, and the
           2023 amendment's added articles (+4) fall after it, as art. 223 -> 227 and 246 -> 250 show);
  art. 227: 债务人应当自收到支付令之日起十五日内清偿债务, 或者向人民法院提出书面异议 (2023 numbering, read in the
            Supreme People's Court library's article-by-article text; art. 223 in the 2021 text);
  art. 250: 申请执行的期间为二年 ... 从法律文书规定履行期间的最后一日起计算 ... 法律文书未规定履行期间的, 从法律文书
            生效之日起计算 (2023 numbering; art. 246 in 2021, art. 239 in 2017). 申请执行时效的中止、中断, 适用法律有关
            诉讼时效中止、中断的规定 (the same article).
- 《最高人民法院关于适用〈中华人民共和国民事诉讼法〉执行程序若干问题的解释》 (执行程序解释, 2008):
  art. 28: 申请执行时效因申请执行人向被执行人提出履行请求、被执行人同意履行义务而中断。从中断时起, 申请执行时效期间重新
           计算 (the 2008 numbering as the commentaries quote it; the 2020 revision's numbering was not verified here).
           A part payment is the debtor's agreement to perform (as for the limitation period, 诉讼时效规定 art. 14).
  A Saturday or Sunday is a 法定休假日 for these periods (the Supreme People's Court's answer of 12 December 2014 on the
  same rule, then art. 82: 如星期六、星期日、"五一"、"十一"、元旦、春节等); the rest days are those of the official
  calendar files (domain.calendar), every Saturday and Sunday that is not a make-up working day included.
- 《征信业管理条例》 (Regulation on the Administration of the Credit Reporting Industry, 2013):
  art. 15: 信息提供者向征信机构提供个人不良信息, 应当事先告知信息主体本人;
  art. 25: 征信机构或者信息提供者收到异议 ... 自收到异议之日起20日内进行核查和处理, 并将结果书面答复异议人.

A clock whose last day falls in a year with no calendar file cannot say whether a rest day moves it: it fails
closed. It is never declared run out (no final refusal, no closure) and never declared open (enforcement waits):
the action waits a day and asks again, and the reason names the missing file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from domain import calendar
from domain.dates import add_months, local_date, local_midnight
from domain.policy import LegalRules

RECHECK = timedelta(days=1)  # a clock waiting for a calendar file or a date asks again daily

# Rules of the legal clocks' refusals (the gate's rules are in domain.compliance).
LEGAL_RULES = {
    "limitation_period",
    "enforcement_deadline",
    "payment_order_objection",
    "objection_window",
    "performance_period",
    "judgment_dates",
    "payment_order_service",
    "bureau_notice",
    "calendar_missing",
    "time_barred",
}
# The demands that present a debt as enforceable (the lawyer's letter threatens a lawsuit): refused once the limitation
# period has run out (rule time_barred). The filings themselves are refused by the period's own clock (limitation_period).
DEMAND_ACTIONS = frozenset({"law_firm"})

# The credit-bureau notice (征信业管理条例 art. 15) by each channel a policy may name for it; the first is the letter.
NOTICE_ACTIONS = {"letter": "bureau_notice", "sms": "bureau_notice_sms", "email": "bureau_notice_email"}
NOTICE_ACTION_SET = set(NOTICE_ACTIONS.values())

SRC_LIMITATION = "民法典 art. 188 (3 years), 189 (from the due date), 195 (restarts), 201-203 (counting)"
SRC_PERFORMANCE = "民事诉讼法 (2023) art. 250 (enforcement after the performance period), art. 85 (rest days)"
SRC_ENFORCEMENT = "民事诉讼法 (2023) art. 250 (2 years from the performance period's last day), art. 85"
SRC_ENFORCEMENT_RESTART = "执行程序解释 art. 28 (interrupted by a demand or the debtor's agreement to perform; counted again)"
SRC_OBJECTION = "民事诉讼法 (2023) art. 227 (15 days from service), art. 85 (service day excluded, rest days)"
SRC_NOTICE = "征信业管理条例 art. 15 (the borrower told before a negative report)"
SRC_NOTICE_PERIOD = "征信业管理条例 art. 15; the notice's days counted by 民法典 arts. 201-203 (to 24:00, rest days move)"
SRC_TIME_BARRED = (
    "民法典 art. 192: after the period only the debtor's agreement to perform waives the defence; art. 195: a demand "
    "interrupts a running period only; 诉讼时效规定 art. 19"
)
SRC_DISPUTE = "征信业管理条例 art. 25 (answer within 20 days of receiving the dispute)"


# ---------------------------------------------------------------- counting periods


def add_years(day: date, years: int) -> date:
    """民法典 art. 202: the corresponding day of the last year; none (29 February) -> the month's last day."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def nominal_last_day(start: date, *, days: int = 0, months: int = 0, years: int = 0) -> date:
    """The last day of a period begun on `start`, before any rest-day extension.

    民法典 art. 201 / 民事诉讼法 art. 85: the start day is not counted, so `days` days after it end on start + days;
    art. 202: a period of months or years ends on the corresponding day (none: the month's last day)."""
    return add_months(add_years(start, years), months) + timedelta(days=days)


def end_of_day(day: date, tz: str) -> datetime:
    """民法典 art. 203: the last day ends at 24:00, that is the next local midnight (returned in UTC)."""
    return local_midnight(day + timedelta(days=1), tz)


@dataclass(frozen=True)
class Period:
    """A period's end. `last_day`/`ends` are None when a calendar file needed to move it is missing."""

    nominal: date
    last_day: date | None
    ends: datetime | None
    earliest: datetime  # 24:00 of the nominal last day: the period cannot end before it
    missing: str | None = None  # why the end is not known
    missing_year: int | None = None  # the year whose calendar it waits for

    @property
    def moved(self) -> bool:
        return self.last_day is not None and self.last_day != self.nominal

    def describe(self, tz: str) -> str:
        if self.last_day is None:
            return f"last day {self.nominal} or later ({self.missing})"
        moved = f", moved from {self.nominal} (a rest day)" if self.moved else ""
        return f"last day {self.last_day}{moved}, ends 24:00 {tz}"


@calendar.while_frozen  # a pure function of its arguments and the calendar files
def period(
    start: date,
    tz: str,
    *,
    days: int = 0,
    months: int = 0,
    years: int = 0,
    rest_days_move: bool = True,
    cal: calendar.Recorded | None = None,
) -> Period:
    """A period counted as 民法典 arts. 201-203 and 民事诉讼法 art. 85 count it; a last day on a rest day moves to the
    first working day after it (民法典 art. 203: 法定休假日结束的次日). `cal`: a case run's recorded years (workflow code),
    else the process-wide calendar."""
    nominal = nominal_last_day(start, days=days, months=months, years=years)
    earliest = end_of_day(nominal, tz)
    if not rest_days_move:
        return Period(nominal, nominal, earliest, earliest)
    try:
        last = calendar.next_working_day(nominal, cal)
    except calendar.CalendarMissing as exc:
        return Period(
            nominal,
            None,
            None,
            earliest,
            f"no calendar for {exc.year} ({exc.path.name}), so whether a rest day moves it is unknown",
            exc.year,
        )
    return Period(nominal, last, end_of_day(last, tz), earliest)


# ---------------------------------------------------------------- the clocks


@dataclass(frozen=True)
class Refusal:
    rule: str
    reason: str
    retry_at: datetime | None = None
    final: bool = False


@dataclass(frozen=True)
class Facts:
    """What the clocks are counted from, as the case knows it."""

    tz: str
    limitation_start: date  # due date, or the day of the last restart
    judgment: bool = False  # a judgment was recorded
    effective_on: date | None = None  # the day it took effect
    performance_ends: date | None = None  # the last day of its performance period
    payment_order: bool = False  # a payment order was issued
    served_on: date | None = None  # the day it was served on the borrower
    objection: bool = False
    notice_delivered_at: datetime | None = None
    enforcement_restart: date | None = None  # the enforcement period's last interruption (执行程序解释 art. 28)
    suspensions: tuple[tuple[date, date], ...] = ()  # obstacles (start, end) recorded under 民法典 art. 194
    # the notice period counted as the law counts days (notice_period); False: delivery + N x 24 h, as runs from
    # before it counted it (workflows/versioning.py NOTICE_PERIOD), and every policy with short demo days
    notice_counted: bool = False
    cal: calendar.Recorded | None = None  # a case run's recorded years (None: the process-wide calendar)


SUSPENSION_MONTHS = 6  # 民法典 art. 194: the last six months, and six months after the obstacle ends
SRC_SUSPENSION = "民法典 art. 194 (an obstacle in the last six months suspends it; it ends six months after the obstacle)"


def in_last_six_months(p: Period, starts_on: date, ends_on: date) -> bool:
    """Does an obstacle from `starts_on` to `ends_on` fall in the period's last six months (民法典 art. 194)? It must
    begin before the period ends and last into its last six months (one that arose earlier counts from when they
    begin, as long as it lasts into them)."""
    window_start = add_months(p.nominal, -SUSPENSION_MONTHS)
    return starts_on <= (p.last_day or p.nominal) and ends_on > window_start


def limitation(f: Facts, rules: LegalRules) -> Period:
    """民法典 art. 188: three years; art. 189: from the day the (last) instalment fell due, that day not counted
    (art. 201); restarted by art. 195 from the day of the interruption; a last day on a rest day moves (art. 203).
    Suspended by an obstacle in its last six months (art. 194): then it ends no earlier than six months after the
    obstacle ended (counted by arts. 201-203 too)."""
    p = period(f.limitation_start, f.tz, years=rules.limitation_years, cal=f.cal)
    for starts_on, ends_on in sorted(f.suspensions):
        if in_last_six_months(p, starts_on, ends_on):
            after = period(ends_on, f.tz, months=SUSPENSION_MONTHS, cal=f.cal)
            if after.earliest > p.earliest:
                p = after
    return p


def performance(f: Facts) -> Period | None:
    """The judgment's performance period ends at 24:00 of its last day, moved past rest days (民事诉讼法 art. 85)."""
    if f.performance_ends is None:
        return None
    return period(f.performance_ends, f.tz, cal=f.cal)  # the stated last day itself (0 days after it), extended if a rest day


def objection_window(f: Facts, rules: LegalRules) -> Period | None:
    """民事诉讼法 art. 227: 15 days from service; art. 85: the service day not counted, a rest day moves the end."""
    if f.served_on is None:
        return None
    return period(f.served_on, f.tz, days=rules.payment_order_objection_days, cal=f.cal)


def enforcement_from(f: Facts, rules: LegalRules) -> date | None:
    """The day the period to apply for enforcement first counts from (not counted itself), before any interruption:
    the last day of the performance period the document sets (民事诉讼法 art. 250); for a payment order, the last day
    of its 15 days; for a judgment that sets none, the day it took effect."""
    if f.judgment:
        return f.performance_ends or f.effective_on
    if f.payment_order:
        w = objection_window(f, rules)
        return w.nominal if w else None
    return None


def enforcement_window(f: Facts, rules: LegalRules) -> Period | None:
    """民事诉讼法 art. 250: two years from `enforcement_from`, counted again from an interruption (执行程序解释 art. 28)."""
    base = enforcement_from(f, rules)
    if base is None:
        return None
    if f.enforcement_restart is not None and f.enforcement_restart > base:
        base = f.enforcement_restart
    return period(base, f.tz, years=rules.enforcement_within_years, cal=f.cal)


def notice_period(f: Facts, rules: LegalRules) -> Period | None:
    """The credit-bureau notice's own words, 如在N日内仍未归还 (征信业管理条例 art. 15): N days from the day it reached the
    borrower, that day not counted (民法典 art. 201), to 24:00 of the last day (art. 203), a last day on a rest day
    moved to the first working day after it (art. 203). The report may go out once it has ended."""
    if f.notice_delivered_at is None:
        return None
    return period(local_date(f.notice_delivered_at, f.tz), f.tz, days=rules.bureau_notice_days, cal=f.cal)


def _missing(what: str, p: Period, now: datetime) -> Refusal:
    return Refusal(
        "calendar_missing", f"{what}: {p.describe('')}; waits until the year's calendar is in force", retry_at=now + RECHECK
    )


# The actions a legal clock holds (every branch of `check` is one of them); any other action goes ahead.
CLOCKED_ACTIONS = frozenset({"lawsuit", "payment_order", "enforcement", "bureau_report"})


def check(action: str, now: datetime, rules: LegalRules, f: Facts) -> Refusal | None:
    """May this court or bureau action go ahead now under its clock? None when it may."""
    if action in ("lawsuit", "payment_order"):
        return _check_filing(now, rules, f)
    if action == "enforcement":
        return _check_enforcement(now, rules, f)
    if action == "bureau_report":
        return _check_bureau_report(now, rules, f)
    return None


def _check_filing(now: datetime, rules: LegalRules, f: Facts) -> Refusal | None:
    """A lawsuit or a payment order: within the limitation period (民法典 art. 188)."""
    p = limitation(f, rules)
    if now < p.earliest:
        return None
    if p.ends is None:
        return _missing(f"the limitation period (restarted {f.limitation_start})", p, now)
    if now >= p.ends:
        return Refusal(
            "limitation_period",
            f"the {rules.limitation_years}-year limitation period ran out: last day "
            f"{p.last_day}, 24:00 {f.tz} (counted from {f.limitation_start}; {SRC_LIMITATION})",
            final=True,
        )
    return None


def _enforcement_opens(now: datetime, rules: LegalRules, f: Facts) -> Period | Refusal | None:
    """The period enforcement waits for (a judgment's performance period, a payment order's objection window), or
    why it cannot be counted yet; None: no document to enforce."""
    if f.judgment:
        if f.performance_ends is None or f.effective_on is None:
            return Refusal(
                "judgment_dates",
                "the judgment's effective date and the last day of its performance period "
                "are needed (record a court outcome with effective_on and performance_ends)",
                retry_at=now + RECHECK,
            )
        return performance(f)
    if not f.payment_order:
        return None
    if f.objection:
        return Refusal("payment_order_objection", "the borrower objected to the payment order; a lawsuit is needed", final=True)
    if f.served_on is None:
        return Refusal(
            "payment_order_service",
            "the payment order's service date is needed (record a court outcome payment_order_served with served_on)",
            retry_at=now + RECHECK,
        )
    return objection_window(f, rules)


def _check_enforcement(now: datetime, rules: LegalRules, f: Facts) -> Refusal | None:
    """Enforcement: after the performance period or the objection window, within the period to apply for it."""
    opens = _enforcement_opens(now, rules, f)
    if opens is None or isinstance(opens, Refusal):
        return opens
    rule = "performance_period" if f.judgment else "objection_window"
    if opens.ends is None:
        return _missing("the " + ("performance period" if f.judgment else "objection window"), opens, now)
    if now < opens.ends:
        what = (
            f"the judgment's performance period ({SRC_PERFORMANCE})"
            if f.judgment
            else f"the {rules.payment_order_objection_days}-day objection window from service on {f.served_on} ({SRC_OBJECTION})"
        )
        return Refusal(rule, f"{what}: {opens.describe(f.tz)}", retry_at=opens.ends)
    w = enforcement_window(f, rules)
    if w is None or now < w.earliest:
        return None
    if w.ends is None:
        return _missing("the enforcement period", w, now)
    if now >= w.ends:
        return Refusal(
            "enforcement_deadline",
            f"enforcement must be applied for within {rules.enforcement_within_years} "
            f"years: {w.describe(f.tz)} ({SRC_ENFORCEMENT})",
            final=True,
        )
    return None


def _check_bureau_report(now: datetime, rules: LegalRules, f: Facts) -> Refusal | None:
    """A credit-bureau report: after a notice reached the borrower, and its days have passed."""
    if f.notice_delivered_at is None:
        return Refusal(
            "bureau_notice",
            f"no notice has reached the borrower ({SRC_NOTICE}): notice undeliverable: verify the address",
            retry_at=now + RECHECK,
        )
    if not f.notice_counted:
        return None
    n = notice_period(f, rules)
    assert n is not None  # the notice reached the borrower (above)
    if n.ends is None and now >= n.earliest:
        return _missing(f"the notice's {rules.bureau_notice_days} days", n, now)
    if now < (n.ends or n.earliest):
        return Refusal(
            "bureau_notice",
            f"the notice gave the borrower {rules.bureau_notice_days} days: {n.describe(f.tz)} ({SRC_NOTICE_PERIOD})",
            retry_at=n.ends or n.earliest,
        )
    return None


def dispute_answer_due(received_on: date, tz: str, rules: LegalRules) -> datetime:
    """征信业管理条例 art. 25: within 20 days of receiving the dispute (that day not counted). Not moved past rest days:
    the regulation is not a civil period under 民法典 art. 204, and the earlier end is the borrower's side."""
    return period(received_on, tz, days=rules.bureau_dispute_answer_days, rest_days_move=False).ends  # type: ignore[return-value]


Kind = Literal["ends", "opens"]


@dataclass(frozen=True)
class ClockView:
    name: str
    kind: Kind
    source: str
    at: datetime | None
    last_day: date | None
    note: str = ""


def clocks(f: Facts, rules: LegalRules) -> list[ClockView]:
    """Every clock running on the case, for `status`."""
    out = []
    p = limitation(f, rules)
    plain = period(f.limitation_start, f.tz, years=rules.limitation_years, cal=f.cal)
    if p.earliest != plain.earliest:
        out.append(
            ClockView(
                "limitation",
                "ends",
                f"{SRC_LIMITATION}; {SRC_SUSPENSION}",
                p.ends,
                p.last_day or None,
                f"suspended (民法典 art. 194): {p.describe(f.tz)}; without the obstacle, {plain.describe(f.tz)}",
            )
        )
    else:
        out.append(ClockView("limitation", "ends", SRC_LIMITATION, p.ends, p.last_day or None, p.describe(f.tz)))
    if f.judgment:
        perf = performance(f)
        if perf is None:
            out.append(
                ClockView(
                    "enforcement_opens",
                    "opens",
                    SRC_PERFORMANCE,
                    None,
                    None,
                    "waiting for the judgment's effective_on and performance_ends",
                )
            )
        else:
            out.append(ClockView("enforcement_opens", "opens", SRC_PERFORMANCE, perf.ends, perf.last_day, perf.describe(f.tz)))
    elif f.payment_order:
        w = objection_window(f, rules)
        if w is None:
            out.append(
                ClockView("objection_window", "ends", SRC_OBJECTION, None, None, "waiting for the service date (served_on)")
            )
        else:
            out.append(
                ClockView(
                    "objection_window",
                    "ends",
                    SRC_OBJECTION,
                    w.ends,
                    w.last_day,
                    ("objection filed; " if f.objection else "") + w.describe(f.tz),
                )
            )
    e = enforcement_window(f, rules)
    if e is not None:
        out.append(ClockView("enforcement_deadline", "ends", SRC_ENFORCEMENT, e.ends, e.last_day, e.describe(f.tz)))
    n = notice_period(f, rules) if f.notice_counted else None
    if n is not None:
        out.append(ClockView("bureau_report_opens", "opens", SRC_NOTICE_PERIOD, n.ends, n.last_day, n.describe(f.tz)))
    return out
