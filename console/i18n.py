"""The console's languages: Chinese (zh_CN, the default of a deployment in the PRC: CONSOLE_LANGUAGE) and English.

- Every string a template or a console module shows is an English msgid marked `_()` (templates) or `N_()` (Python);
  its Chinese is in console/locale/zh_CN/LC_MESSAGES/console.po, a gettext catalogue that Babel reads at start-up
  (babel.messages.pofile: no compiled .mo to build or to forget). `pybabel extract -F console/babel.cfg` refreshes
  the template (console.pot) and `pybabel update` the catalogue; tests/test_i18n.py fails on a msgid with no Chinese.
- The names of the policy's and the case's identifiers (stages, rules, outcomes...) are in domain/display.py.
- An operator picks a language with the header's switch: kept on their record (operators.language, applied when they
  sign in on any browser) and in a cookie (`console_lang`, a year).
- Times are shown in the floor's zone (CONSOLE_TIME_ZONE, Asia/Shanghai) with the zone named.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from domain import display
from domain.dates import zone

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "console"
LANGUAGES = {"zh_CN": "中文", "en": "English"}
COOKIE = "console_lang"
COOKIE_SECONDS = 365 * 86400
ZONE_NAMES = {
    "Asia/Shanghai": ("北京时间", "Beijing time"),
    "Asia/Hong_Kong": ("香港时间", "Hong Kong time"),
    "UTC": ("UTC", "UTC"),
}


def N_(message: str) -> str:
    """Marks a string for the catalogue (extracted by Babel) without translating it here: translated when shown."""
    return message


@lru_cache(maxsize=8)
def catalogue(lang: str) -> dict[str, str]:
    """msgid -> translation of `lang`, read from its .po file (empty for English, the msgids' own language).
    Fuzzy and empty entries are left out: a string not yet translated shows in English, and the test says which."""
    if lang == "en":
        return {}
    from babel.messages.pofile import read_po

    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as f:
        cat = read_po(f, locale=lang)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy and isinstance(m.id, str)}


@dataclass(frozen=True)
class Translator:
    lang: str
    tz: str = "Asia/Shanghai"

    @property
    def zh(self) -> bool:
        return self.lang.startswith("zh")

    @property
    def html_lang(self) -> str:
        return "zh-CN" if self.zh else "en"

    def gettext(self, message: str, **values: object) -> str:
        text = catalogue(self.lang).get(message, message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        text = self.gettext(singular if n == 1 else plural)  # Chinese has one form; the catalogue keeps both ids
        return text % {"num": n, **values}

    def name(self, kind: str, key: str | None) -> str:
        return display.name(kind, key, self.lang)

    def outcome(self, key: str | None) -> str:
        return display.outcome_name(key, self.lang) if key else "–"

    def status_key(self, key: str) -> str:
        """The dashboard's status rows: 'active', 'paused', 'closed: paid'."""
        status, _, outcome = key.partition(": ")
        shown = self.name("status", status)
        return f"{shown}{'：' if self.zh else ': '}{self.outcome(outcome)}" if outcome else shown

    def zone_name(self, tz: str | None = None) -> str:
        tz = tz or self.tz
        names = ZONE_NAMES.get(tz)
        return (names[0] if self.zh else names[1]) if names else tz

    def when(self, t: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M", tz: str | None = None, named: bool = True) -> str:
        """An instant in the operator's zone (or `tz`), with the zone named: '2026-12-07 09:30 北京时间'."""
        if t is None:
            return "–"
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        shown = t.astimezone(zone(tz or self.tz)).strftime(fmt)
        return f"{shown} {self.zone_name(tz)}" if named else shown


def pick(cookie: str | None) -> str:
    """The operator's language: the cookie they chose, else the deployment's (CONSOLE_LANGUAGE)."""
    if cookie in LANGUAGES:
        return cookie
    from console.config import console_settings

    return console_settings().language


def translator(cookie: str | None) -> Translator:
    from console.config import console_settings

    return Translator(pick(cookie), console_settings().time_zone)


# ---------------------------------------------------------------- the application layer's reasons, in Chinese

# The reasons app/ and domain/ give (English, for the API's bank systems) that a collector meets on a form, as
# (English start, Chinese); the field's name is shown in the operator's language, a reason not listed in English.
FIELDS = {
    "amount": N_("amount"),
    "date": N_("date"),
    "kind": N_("kind"),
    "outcome": N_("outcome"),
    "notes": N_("notes"),
    "reference": N_("reference"),
    "instalments": N_("instalments"),
    "first_due": N_("first due"),
    "until": N_("until"),
    "waiver_percent": N_("waiver %"),
    "pay_by": N_("pay by"),
    "reviewer": N_("reviewer"),
    "resolution": N_("resolution"),
    "assignee": N_("operator"),
    "reason": N_("reason"),
    "token": N_("token"),
    "q": N_("search"),
    "day": N_("day"),
    "note": N_("note"),
    "task_id": N_("task"),
    "loan_id": N_("loan"),
    "input": N_("input"),
    "authorization": N_("authorization"),
    "decision": N_("decision"),
}
ROLES = {
    "viewer": ("查看员", "viewer"),
    "collector": ("催收员", "collector"),
    "supervisor": ("主管", "supervisor"),
    "payments": ("还款处理", "payments"),
    "legal": ("法务", "legal"),
    "compliance": ("合规", "compliance"),
    "admin": ("管理员", "admin"),
    "self_service": ("自助页面", "own page"),
}

BORROWER = ("借款人本人", "the borrower")  # the actor `borrower:<loan>`: the loan's borrower on their own page


def people(names: dict[str, str], ids, zh: bool) -> dict[str, str]:  # noqa: ANN001 - any iterable of actor ids
    """Operators' display names, and the borrower's actor ids named as the borrower in the console's language."""
    return {**names, **{i: BORROWER[0 if zh else 1] for i in ids if i and i.startswith("borrower")}}


def _roles(text: str) -> str:
    return "、".join(ROLES.get(r.strip(), (r.strip(),))[0] for r in text.split(",") if r.strip())


# (pattern of the English reason, its Chinese; groups as in the pattern, roles named in Chinese)
REASONS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (
        re.compile(r"a promise of (\S+) is less than (\d+)% of the (\S+) due: at least (\S+)"),
        lambda m: f"承诺金额 {m.group(1)} 低于应还金额 {m.group(3)} 的 {m.group(2)}%，至少应为 {m.group(4)}",
    ),
    (
        re.compile(r"(.+?) is not inside the hours we may call, (\S+)"),
        lambda m: f"{m.group(1)} 不在我行可联系的时段 {m.group(2)} 之内",
    ),
    (re.compile(r"(.+?) is shorter than two hours"), lambda m: f"{m.group(1)} 不足两小时"),
    (re.compile(r"must be greater than zero"), lambda m: "必须大于零"),
    (re.compile(r"is empty"), lambda m: "不能为空"),
    (re.compile(r"must not be negative \((.*)\)"), lambda m: f"不能为负数（{m.group(1)}）"),
    (
        re.compile(r"is not a plain decimal amount \((.*?)\)"),
        lambda m: f"不是有效金额（{m.group(1)}），请只写数字和小数点，例如 1234.56",
    ),
    (
        re.compile(r"has (\d+) decimals but (\w+) allows at most (\d+) \((.*)\)"),
        lambda m: f"有 {m.group(1)} 位小数，{m.group(2)} 最多 {m.group(3)} 位（{m.group(4)}）",
    ),
    (re.compile(r"is too large"), lambda m: "金额过大"),
    (re.compile(r"(.*) is not a date \(YYYY-MM-DD\)"), lambda m: f"{m.group(1)} 不是有效日期（YYYY-MM-DD）"),
    (
        re.compile(r"(.+?) needs the role (.+); operator (\S+) has (.+)"),
        lambda m: f"此操作（{m.group(1)}）需要角色：{_roles(m.group(2))}；操作员 {m.group(3)} 的角色：{_roles(m.group(4))}",
    ),
    (
        re.compile(r"this needs one of the roles (.+); operator (\S+) has (.+)"),
        lambda m: f"此操作需要以下角色之一：{_roles(m.group(1))}；操作员 {m.group(2)} 的角色：{_roles(m.group(3))}",
    ),
)


# The contact gate's reasons (domain/compliance.py), as a collector reads a refused call
GATE: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (
        re.compile(r"^(\d\d:\d\d) local is outside (\S+)$"),
        lambda m: f"借款人当地时间 {m.group(1)}，不在允许联系的时段 {m.group(2)} 内",
    ),
    (
        re.compile(r"^(\d\d:\d\d) Beijing time is outside (\S+)$"),
        lambda m: f"北京时间 {m.group(1)}，不在允许联系的时段 {m.group(2)} 内",
    ),
    (re.compile(r"^hardship hold$"), lambda m: "困难缓催期间"),
    (re.compile(r"^the debt is disputed"), lambda m: "债务存在异议：解决前不联系、不报送征信"),
    (re.compile(r"^complaint under compliance review"), lambda m: "投诉正在合规复核：复核人解除前全部暂停"),
    (re.compile(r"^the borrower asked not to be contacted"), lambda m: "借款人要求停止联系：只发送法律要求的通知"),
    (
        re.compile(r"^(\d+) (\w+) contact\(s\) already today; the cap is (\d+)$"),
        lambda m: f"今天已{display.name('action', m.group(2))}联系 {m.group(1)} 次，上限为 {m.group(3)} 次",
    ),
    (re.compile(r"^(\S+) is a rest day"), lambda m: f"{m.group(1)} 是休息日（{m.string}）"),
)


def gate_reason(tr: Translator, text: str) -> str:
    """A gate's refusal in the operator's language (GATE); a reason not listed keeps the gate's words."""
    if tr.zh:
        for pattern, zh in GATE:
            m = pattern.search(text)
            if m:
                return zh(m)
    return text


def reason(tr: Translator, field: str | None, text: str) -> str:
    """A refusal as the operator reads it: the field's name and the reason, in their language. A reason of the
    application layer not in REASONS keeps its English (the API's words) behind the field's translated name."""
    label = tr.gettext(FIELDS[field]) if field in FIELDS else (field or "")
    shown = tr.gettext(text)
    if tr.zh and shown == text:
        for pattern, zh in REASONS:
            m = pattern.search(text)
            if m:
                shown = zh(m)
                break
    if field in (None, "authorization", "input"):
        return shown
    return f"{label}{'：' if tr.zh else ': '}{shown}"


# What the case answers an accepted input (domain/case.py's results, English for the API), as the operator reads it
DONE: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (
        re.compile(r"promise recorded: (.+?) by (\S+); the ladder is paused until (.+)"),
        lambda m: f"已记录还款承诺：{m.group(2)} 前还 {m.group(1)}；催收暂停至 {m.group(3)}",
    ),
    (
        re.compile(r"(\w+) plan agreed: (.+?) in (\d+) payment\(s\); the ladder is paused"),
        lambda m: f"已达成{display.name('plan', m.group(1))}：共 {m.group(2)}，分 {m.group(3)} 期；催收暂停",
    ),
    (re.compile(r"(\w+) hold placed; contact stopped"), lambda m: f"已暂停催收（{display.name('hold', m.group(1))}）；停止联系"),
    (re.compile(r"(\w+) hold released"), lambda m: f"已解除暂停（{display.name('hold', m.group(1))}）"),
    (
        re.compile(r"(\w+) outcome (\w+) recorded"),
        lambda m: (
            f"已记录{display.name('action', m.group(1)) if m.group(1) != 'court' else '法院'}结果："
            f"{display.outcome_name(m.group(2))}"
        ),
    ),
    (re.compile(r"case closed as (\w+)"), lambda m: f"案件已结案：{display.outcome_name(m.group(1))}"),
)


def done(tr: Translator, text: str) -> str:
    """An accepted input's answer in the operator's language; an answer not in DONE keeps its English."""
    shown = tr.gettext(text)
    if tr.zh and shown == text:
        for pattern, zh in DONE:
            m = pattern.match(text)
            if m:
                return zh(m) + text[m.end() :]
    return shown


def _step(key: str) -> str:
    return display.name("step", key) if key in display.STEPS else display.name("stage", key)


def _action(key: str) -> str:
    return display.name("action", key.split("@")[0])


# The case's own words in its timeline and its next action (English, the workflow's history), the common ones in
# Chinese; anything else keeps the case's words (the detail is evidence: never reworded beyond recognition)
DETAILS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"^([a-z_]+)/([a-z_@]+) via ([a-z_]+)$"), lambda m: f"{_step(m.group(1))}：{_action(m.group(2))}"),
    (
        re.compile(r"^([a-z_]+)/([a-z_@]+): allowed: all rules pass$"),
        lambda m: f"{_step(m.group(1))}：{_action(m.group(2))}，联系规则全部通过",
    ),
    (
        re.compile(r"^([a-z_]+)/([a-z_@]+): ([a-z_]+): (.*)$"),
        lambda m: f"{_step(m.group(1))}：{_action(m.group(2))}，{display.name('rule', m.group(3))}：{m.group(4)}",
    ),
    (re.compile(r"^([a-z_]+)$"), lambda m: _step(m.group(1)) if m.group(1) in display.STEPS else m.group(1)),
    (
        re.compile(r"^DPD (\d+), outstanding ([A-Z]{3}) ([0-9.]+), policy (.+)$"),
        lambda m: f"逾期 {m.group(1)} 天，欠款 {m.group(2)} {m.group(3)}，策略 {m.group(4)}",
    ),
    (re.compile(r"^([A-Z]{3} [0-9.]+) by (\S+); ladder paused$"), lambda m: f"{m.group(2)} 前还 {m.group(1)}；催收暂停"),
    (
        re.compile(r"^paused, promise to pay ([A-Z]{3} [0-9.]+) by (\S+); next: promise deadline$"),
        lambda m: f"已暂停：承诺 {m.group(2)} 前还 {m.group(1)}；下一步：承诺到期",
    ),
    (re.compile(r"^([a-z_]+)$"), lambda m: m.group(1)),
    (re.compile(r"^waiting for an operator$"), lambda m: "等待操作员处理"),
    (
        re.compile(r"^awaiting (\w+) outcome for (\w+) until (.+)$"),
        lambda m: f"等待{_step(m.group(2))}的{_action(m.group(1)) if m.group(1) != 'court' else '法院'}结果，至 {m.group(3)}",
    ),
    (re.compile(r"^step ([a-z_]+)$"), lambda m: f"步骤：{_step(m.group(1))}"),
    (
        re.compile(r"^(.+): waits for a second person until (.+)$"),
        lambda m: f"{detail_zh(m.group(1))}：等待第二人审批，至 {m.group(2)}",
    ),
    # four-eyes proposals (domain/approvals.py summary_of)
    (re.compile(r"^plan interest_waiver waiving (\d+)%$"), lambda m: f"减免利息 {m.group(1)}%"),
    (re.compile(r"^plan instalments in (\d+) instalments$"), lambda m: f"分 {m.group(1)} 期还款"),
    (re.compile(r"^plan deferral until (\S+)$"), lambda m: f"展期至 {m.group(1)}"),
    (re.compile(r"^close the borrower's cases: (\w+)$"), lambda m: f"结清该借款人的全部案件：{display.name('hold', m.group(1))}"),
    (re.compile(r"^release the complaint hold$"), lambda m: "解除投诉暂停"),
    (re.compile(r"^close the case as (\w+)$"), lambda m: f"结案：{display.outcome_name(m.group(1))}"),
    (re.compile(r"^confirm the write-off$"), lambda m: "确认核销"),
    (re.compile(r"^contact details shown in the console$"), lambda m: "在控制台显示了联系方式"),
    (re.compile(r"^found in the console's search by id \((.*)\)$"), lambda m: f"在控制台按编号搜索找到（{m.group(1)}）"),
    (
        re.compile(r"^found in the console's search by the last four digits of the borrower's phone \((\d+)\)$"),
        lambda m: f"在控制台按手机尾号搜索找到（{m.group(1)}）",
    ),
    (
        re.compile(r"^address shown on visit task (\d+) in the console$"),
        lambda m: f"在控制台的上门任务 {m.group(1)} 中显示了地址",
    ),
    (re.compile(r"^none: closed as (\w+)$"), lambda m: f"无：已结案（{display.outcome_name(m.group(1))}）"),
)


def detail_zh(text: str) -> str:
    return detail(Translator("zh_CN"), text)


def detail(tr: Translator, text: str | None) -> str:
    """A timeline detail or a next action as the operator reads it (DETAILS; otherwise the case's words)."""
    if not text:
        return ""
    if tr.zh:
        for pattern, zh in DETAILS:
            m = pattern.match(text)
            if m:
                return zh(m)
        if text.startswith("next: ") or "; next: " in text:
            head, _, nxt = text.rpartition("next: ")
            return (detail(tr, head.rstrip("; ")) + "；" if head else "") + "下一步：" + _step(nxt)
    elif text.startswith("next: ") or "; next: " in text:
        head, _, nxt = text.rpartition("next: ")
        return f"{head}next: {display.name('step', nxt, 'en') if nxt in display.STEPS else nxt}"
    return text
