"""The console's two languages: every string the templates and the console's modules show has its Chinese in the
catalogue (a template string without one fails here, naming it), no template shows English outside `_()`, and the
names of the policy's and the case's identifiers (domain/display.py) cover every identifier, in the ladder's order.
Money reads as a Chinese bank statement reads it; times carry their zone's name."""

from __future__ import annotations

import datetime as dt
import re
import typing
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from jinja2 import Environment

from console import i18n
from domain import display

CONSOLE = Path(i18n.__file__).resolve().parent
PO = CONSOLE / "locale" / "zh_CN" / "LC_MESSAGES" / "console.po"
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s")


def extracted() -> dict[str, str]:
    """msgid -> where it is, from the templates (Jinja) and the console's Python (N_ and _), as pybabel extracts them."""
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
    out = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(CONSOLE), method_map=method_map, keywords=keywords
    ):
        for m in message if isinstance(message, tuple) else (message,):
            if m:
                out.setdefault(m, f"console/{filename}:{lineno}")
    return out


def test_every_string_the_console_shows_has_its_chinese_translation():
    with PO.open("rb") as f:
        cat = read_po(f, locale="zh_CN")
    translated = {m.id: m for m in cat if m.id}
    missing = [f"{where}: {msg!r}" for msg, where in extracted().items() if msg not in translated]
    assert not missing, "not in console.po (pybabel update, then translate):\n" + "\n".join(missing)
    empty = [m.id for m in translated.values() if not m.string or m.fuzzy]
    assert not empty, f"untranslated or fuzzy in console.po: {empty}"
    for m in translated.values():
        assert sorted(PLACEHOLDER.findall(m.id)) == sorted(PLACEHOLDER.findall(m.string)), (m.id, m.string)
        assert re.search(r"[\u4e00-\u9fff]", m.string) or m.string == m.id, f"not Chinese: {m.id!r} -> {m.string!r}"
    assert len(i18n.catalogue("zh_CN")) == len(translated)


# Text a template may show as it is in both languages: the API's name and the M-buckets' notation.
LITERAL_OK = {"API", "sha256"}
SHOWN_ATTRIBUTES = re.compile(r'\b(?:placeholder|aria-label|title|alt|label)="([^"{]*)"')


def test_no_template_shows_english_outside_a_translated_string():
    """The templates' own text (what is left once every {{ }} and {% %} is taken out and the tags are stripped) and the
    attributes a person reads (placeholder, aria-label, title, alt, label) hold no English word: each is a `_()`."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    bad = []
    for path in sorted((CONSOLE / "templates").glob("*.html")):
        source = path.read_text(encoding="utf-8")
        text, inside = [], False
        for _lineno, kind, value in env.lex(source):
            if kind in ("variable_begin", "block_begin"):
                inside = True
                text.append("\x00")
            elif kind in ("variable_end", "block_end"):
                inside = False
            elif kind == "data" and not inside:
                text.append(value)
        joined = "".join(text)
        for attr in SHOWN_ATTRIBUTES.findall(joined):
            if re.search(r"[A-Za-z]{2,}", attr) and attr not in LITERAL_OK and not attr.endswith(".toml"):
                bad.append(f"{path.name}: attribute {attr!r}")
        shown = re.sub(r"<[^>]*>", " ", joined)
        shown = re.sub(r"""\s[\w-]+(="[^"]*"|='[^']*')""", " ", shown)  # attributes a macro writes into its caller's tag
        shown = re.sub(r"&[a-z]+;|&#\d+;", " ", shown)
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z']+", shown) if w not in LITERAL_OK]
        if words:
            bad.append(f"{path.name}: {' '.join(words)!r}")
    assert not bad, "English outside _() in a template:\n" + "\n".join(bad)


# --------------------------------------------------------------------------- the identifiers' names


def _literal(t) -> set[str]:
    return set(typing.get_args(t))


def test_every_identifier_of_the_policies_and_the_domain_has_a_chinese_and_an_english_name():
    from domain import compliance, legal, models, policy, risk
    from domain.policy import load_policy

    policies = [load_policy(p.stem) for p in sorted(policy.POLICY_DIR.glob("*.toml"))]
    assert len(policies) >= 3
    wanted = {
        "stage": {s.stage for p in policies for s in p.steps} | {"new"},
        "step": {s.key for p in policies for s in p.steps},
        "action": _literal(policy.Action) | set(legal.NOTICE_ACTIONS.values()),
        "rule": legal.LEGAL_RULES
        | set(re.findall(r'Decision\(\s*False,\s*"([a-z_]+)"', Path(compliance.__file__).read_text()))
        | _literal(models.HoldKind),
        "outcome": _literal(models.Outcome),
        "status": _literal(models.CaseStatusName),
        "hold": _literal(models.HoldKind),
        "contact_outcome": set(models.CALL_OUTCOMES) | set(models.VISIT_OUTCOMES),
        "court": set(models.COURT_EVENTS),
        "approval": _literal(models.ApprovalKind),
        "risk": set(risk.CLASSES),
        "plan": {"instalments", "deferral", "interest_waiver"},
    }
    from console.worklists import HUMAN_KINDS
    from db import jobs
    from domain import channels

    wanted["event"] = set(HUMAN_KINDS) | {"opened", "step_started", "contact_refused", "promise_broken", "closed"}
    wanted["event"] |= {jobs.CALENDAR_MISSING, jobs.RETENTION_ERASED, "case_found_by_search"}
    wanted["channel"] = {channels.channel_of(a) for a in wanted["action"]}
    for kind, ids in wanted.items():
        names = display.KINDS[kind]
        assert not ids - set(names), f"{kind}: no display name for {sorted(ids - set(names))}"
        for key in ids:
            zh, en = names[key]
            assert re.search(r"[\u4e00-\u9fff]", zh), f"{kind} {key}: {zh!r} is not Chinese"
            assert en and not re.search(r"[\u4e00-\u9fff]", en) and "_" not in en, f"{kind} {key}: {en!r}"
    assert display.name("stage", "lawyers_letter") == "律师函"
    assert display.name("stage", "lawyers_letter", "en") == "Lawyer's letter"
    assert display.name("stage", "some_new_stage") == "some new stage", "an unnamed identifier is shown, not an error"
    # risk classes: the same Chinese as the regulation's names in domain.risk
    assert {k: v[0] for k, v in display.RISK_CLASSES.items()} == dict(risk.CHINESE)


def test_the_stages_are_listed_in_the_order_of_every_policys_ladder():
    from domain import policy
    from domain.policy import load_policy

    for path in sorted(policy.POLICY_DIR.glob("*.toml")):
        ladder = list(dict.fromkeys(s.stage for s in load_policy(path.stem).steps))
        assert display.in_ladder_order(ladder) == ladder, f"{path.name}: {ladder}"
    assert display.in_ladder_order(["litigation", "agency", "credit_bureau", "enforcement", "lawyers_letter"]) == [
        "lawyers_letter",
        "credit_bureau",
        "agency",
        "litigation",
        "enforcement",
    ]
    assert display.stage_rank("not_a_stage") > display.stage_rank("enforcement")


# --------------------------------------------------------------------------- money, times, reasons


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (385578256, "CNY", "¥3,855,782.56"),
        (0, "CNY", "¥0.00"),
        (5, "CNY", "¥0.05"),
        (100_000_000_00, "CNY", "¥100,000,000.00"),
        (-1200, "CNY", "-¥12.00"),
        (123456, "HKD", "HK$1,234.56"),
        (1234, "JPY", "JP¥1,234"),
        (1234500, "KWD", "KWD 1,234.500"),
        (2**63 - 1, "CNY", "¥92,233,720,368,547,758.07"),  # exact at the ledger's largest amount: no float anywhere
    ],
)
def test_money_is_grouped_with_its_currency_sign_before_it(minor, currency, shown):
    assert display.money(minor, currency) == shown


def test_the_money_filter_reads_the_application_layers_decimal_strings():
    from console.base import money_text

    assert money_text("3855782.56", "CNY") == "¥3,855,782.56"
    assert money_text(385578256, "CNY") == "¥3,855,782.56"
    assert money_text("-12.00", "CNY") == "-¥12.00"
    assert money_text(None) == "–" and money_text("n/a") == "n/a"


def test_phone_numbers_are_masked_to_their_first_three_and_last_four_digits():
    assert display.mask_phone("13812345678") == "138****5678"
    assert display.mask_phone("+86 138-1234-5678") == "861******5678"
    assert display.mask_phone(None) == "–"


def test_times_are_shown_in_the_operators_zone_with_the_zone_named():
    t = dt.datetime(2026, 12, 6, 16, 30, tzinfo=dt.UTC)  # 00:30 the next day in Beijing
    assert i18n.Translator("zh_CN").when(t) == "2026-12-07 00:30 北京时间"
    assert i18n.Translator("en").when(t) == "2026-12-07 00:30 Beijing time"
    assert i18n.Translator("en").when(t, "%H:%M", tz="Europe/Berlin") == "17:30 Europe/Berlin"
    assert i18n.Translator("zh_CN").when(None) == "–"


def test_a_refusal_names_its_field_and_reason_in_the_operators_language():
    zh, en = i18n.Translator("zh_CN"), i18n.Translator("en")
    reason = "has 3 decimals but CNY allows at most 2 ('12.345')"
    assert i18n.reason(zh, "amount", reason) == "金额：有 3 位小数，CNY 最多 2 位（'12.345'）"
    assert i18n.reason(en, "amount", reason) == f"amount: {reason}"
    forbidden = "promise needs the role collector, supervisor; operator op-1 has viewer"
    assert i18n.reason(zh, "authorization", forbidden) == "此操作（promise）需要角色：催收员、主管；操作员 op-1 的角色：查看员"
    assert i18n.reason(zh, "notes", "something new") == "备注：something new", "an unknown reason keeps its words"


def test_the_language_is_the_cookies_else_the_deployments(monkeypatch):
    assert i18n.pick(None) == "zh_CN" and i18n.pick("en") == "en" and i18n.pick("fr") == "zh_CN"
    monkeypatch.setenv("CONSOLE_LANGUAGE", "en")
    assert i18n.pick(None) == "en"
    monkeypatch.setenv("CONSOLE_LANGUAGE", "fr")
    with pytest.raises(Exception, match="CONSOLE_LANGUAGE"):
        i18n.pick(None)
    monkeypatch.setenv("CONSOLE_LANGUAGE", "zh_CN")
    monkeypatch.setenv("CONSOLE_TIME_ZONE", "Mars/Olympus")
    with pytest.raises(Exception, match="CONSOLE_TIME_ZONE.*IANA"):
        i18n.translator(None)


def test_an_accepted_input_is_answered_in_the_operators_language():
    zh, en = i18n.Translator("zh_CN"), i18n.Translator("en")
    text = "promise recorded: CNY 500.00 by 2026-12-08; the ladder is paused until 2026-12-11 16:00 UTC"
    assert i18n.done(zh, text) == "已记录还款承诺：2026-12-08 前还 CNY 500.00；催收暂停至 2026-12-11 16:00 UTC"
    assert i18n.done(en, text) == text
    assert i18n.done(zh, "visit outcome not_home recorded") == "已记录上门结果：不在家"
    assert i18n.done(zh, "dispute hold placed; contact stopped") == "已暂停催收（异议）；停止联系"
    assert i18n.done(zh, "something else") == "something else"


def test_the_cases_common_words_in_its_timeline_are_shown_in_chinese_and_the_rest_as_the_case_wrote_them():
    zh, en = i18n.Translator("zh_CN"), i18n.Translator("en")
    assert i18n.detail(zh, "reminder_notice/email via email") == "提醒和催收通知：电子邮件"
    assert i18n.detail(zh, "reminder_notice/sms: allowed: all rules pass") == "提醒和催收通知：短信，联系规则全部通过"
    assert i18n.detail(zh, "first_call/call: contact_window: outside 08:00-21:00") == (
        "第一次催收电话：电话，联系时段：outside 08:00-21:00"
    )
    assert i18n.detail(zh, "reminder_notice") == "提醒和催收通知"
    assert i18n.detail(zh, "DPD 1, outstanding CNY 10520.00, policy default 2026.11.1") == (
        "逾期 1 天，欠款 CNY 10520.00，策略 default 2026.11.1"
    )
    assert i18n.detail(zh, "next: first_call") == "下一步：第一次催收电话"
    assert i18n.detail(en, "next: lawyers_letter") == "next: Lawyer's letter"
    assert i18n.detail(zh, "contact details shown in the console") == "在控制台显示了联系方式"
    assert i18n.detail(zh, "a detail nobody translated") == "a detail nobody translated"
    assert i18n.detail(zh, "plan interest_waiver waiving 30%") == "减免利息 30%"
    assert i18n.detail(zh, "plan interest_waiver waiving 30%: waits for a second person until 2026-12-10 02:20 UTC") == (
        "减免利息 30%：等待第二人审批，至 2026-12-10 02:20 UTC"
    )
    assert i18n.detail(zh, "step first_call") == "步骤：第一次催收电话"
    assert i18n.detail(zh, "awaiting visit outcome for home_visit until 2026-12-20 16:00Z") == (
        "等待上门催收的上门结果，至 2026-12-20 16:00Z"
    )


def test_a_refused_calls_reason_reads_in_chinese_with_the_window_kept():
    zh, en = i18n.Translator("zh_CN"), i18n.Translator("en")
    text = "21:59 local is outside 08:00-21:00"
    assert i18n.gate_reason(zh, text) == "借款人当地时间 21:59，不在允许联系的时段 08:00-21:00 内"
    assert i18n.gate_reason(en, text) == text
    assert i18n.gate_reason(zh, "3 call contact(s) already today; the cap is 3") == "今天已电话联系 3 次，上限为 3 次"
    assert i18n.gate_reason(zh, "a new rule's words") == "a new rule's words"
