"""The official calendar files against the notices' own words, and their validation.

The expected days are derived here from the text of 国务院办公厅关于2026年部分节假日安排的通知 (国办发明电〔2025〕7号,
4 November 2025), copied below as published, not from the calendar file under test.
"""

from __future__ import annotations

import re
from datetime import UTC, date, timedelta
from pathlib import Path

import pytest

from domain import calendar as cal
from domain.errors import InvalidInput

NOTICE_2026 = """
一、元旦：1月1日（周四）至3日（周六）放假调休，共3天。1月4日（周日）上班。
二、春节：2月15日（农历腊月二十八、周日）至23日（农历正月初七、周一）放假调休，共9天。2月14日（周六）、2月28日（周六）上班。
三、清明节：4月4日（周六）至6日（周一）放假，共3天。
四、劳动节：5月1日（周五）至5日（周二）放假调休，共5天。5月9日（周六）上班。
五、端午节：6月19日（周五）至21日（周日）放假，共3天。
六、中秋节：9月25日（周五）至27日（周日）放假，共3天。
七、国庆节：10月1日（周四）至7日（周三）放假调休，共7天。9月20日（周日）、10月10日（周六）上班。
"""


def notice_days(text: str, year: int) -> tuple[set[date], set[date], dict[str, int]]:
    """Rest days, make-up working days and each break's 共N天, read from the notice's sentences."""
    rest, work, counts = set(), set(), {}
    for line in filter(None, (s.strip() for s in text.splitlines())):
        name = line.split("、", 1)[1].split("：", 1)[0]
        m = re.search(r"(\d+)月(\d+)日（[^）]*）至(?:(\d+)月)?(\d+)日（[^）]*）放假", line)
        if m:
            first = date(year, int(m[1]), int(m[2]))
            last = date(year, int(m[3] or m[1]), int(m[4]))
        else:  # "1月1日（周三）放假1天"
            m = re.search(r"(\d+)月(\d+)日（[^）]*）放假(\d+)天", line)
            first = date(year, int(m[1]), int(m[2]))
            last = first + timedelta(days=int(m[3]) - 1)
        n = (last - first).days + 1
        rest |= {first + timedelta(days=i) for i in range(n)}
        counts[name] = int((re.search(r"共(\d+)天", line) or re.search(r"放假(\d+)天", line))[1])
        assert counts[name] == n, line  # the notice's own count agrees with its dates
        tail = line.split("。", 1)[1]
        work |= {date(year, int(a), int(b)) for a, b in re.findall(r"(\d+)月(\d+)日（周[六日]）", tail)}
        if "上班" not in tail:
            assert not re.findall(r"\d+月\d+日", tail), line
    return rest, work, counts


REST_2026, WORK_2026, COUNTS_2026 = notice_days(NOTICE_2026, 2026)


def test_the_notice_reading_itself():
    assert len(REST_2026) == 33 and len(WORK_2026) == 6  # 3+9+3+5+3+3+7 days off; 6 make-up days
    assert date(2026, 2, 21) in REST_2026 and date(2026, 2, 21).weekday() == 5  # a Saturday inside 春节


def test_every_day_of_2026_against_the_notice():
    day = date(2026, 1, 1)
    while day.year == 2026:
        expected_rest = day in REST_2026 or (day.weekday() >= 5 and day not in WORK_2026)
        assert cal.is_rest_day(day) is expected_rest, day
        assert cal.is_working_day(day) is (not expected_rest), day
        assert cal.is_public_holiday(day) is (day in REST_2026), day
        day += timedelta(days=1)


@pytest.mark.parametrize("day", sorted(REST_2026))
def test_each_rest_day_of_2026(day):
    assert cal.is_rest_day(day) and cal.is_public_holiday(day) and not cal.is_working_day(day)


@pytest.mark.parametrize("day", sorted(WORK_2026))
def test_each_make_up_working_day_of_2026(day):
    assert day.weekday() >= 5  # a Saturday or a Sunday...
    assert cal.is_working_day(day) and not cal.is_rest_day(day) and not cal.is_public_holiday(day)


def test_the_breaks_and_their_counts_match_the_notice():
    c = cal.year_calendar(2026)
    assert {b.name: len(b.rest) for b in c.breaks} == COUNTS_2026
    assert c.number == "国办发明电〔2025〕7号" and c.published == date(2025, 11, 4)
    assert c.title == "国务院办公厅关于2026年部分节假日安排的通知"
    assert c.break_of(date(2026, 2, 22)) == "春节"


def test_2025_against_its_notice():
    notice = """
一、元旦：1月1日（周三）放假1天，不调休。
二、春节：1月28日（农历除夕、周二）至2月4日（农历正月初七、周二）放假调休，共8天。1月26日（周日）、2月8日（周六）上班。
三、清明节：4月4日（周五）至6日（周日）放假，共3天。
四、劳动节：5月1日（周四）至5日（周一）放假调休，共5天。4月27日（周日）上班。
五、端午节：5月31日（周六）至6月2日（周一）放假，共3天。
六、国庆节、中秋节：10月1日（周三）至8日（周三）放假调休，共8天。9月28日（周日）、10月11日（周六）上班。
"""  # 国办发明电〔2024〕12号, 12 November 2024
    rest, work, _ = notice_days(notice, 2025)
    day = date(2025, 1, 1)
    while day.year == 2025:
        assert cal.is_rest_day(day) is (day in rest or (day.weekday() >= 5 and day not in work)), day
        day += timedelta(days=1)
    assert cal.year_calendar(2025).number == "国办发明电〔2024〕12号"


def test_next_working_day():
    assert cal.next_working_day(date(2026, 2, 14)) == date(2026, 2, 14)  # make-up Saturday
    assert cal.next_working_day(date(2026, 2, 15)) == date(2026, 2, 24)  # 23rd is the last rest day
    assert cal.next_working_day(date(2026, 10, 1)) == date(2026, 10, 8)
    assert cal.next_working_day(date(2026, 12, 5)) == date(2026, 12, 7)  # an ordinary weekend


def test_the_holidays_package_agrees_where_it_speaks():
    """Cross-check only: the package's 2026 holidays are rest days in the file (it misses the weekend
    days inside a break, which is why it is no longer the source)."""
    import holidays

    pkg = holidays.China(years=2026)
    for day in pkg:
        assert cal.is_rest_day(day), (day, pkg[day])
    for day in WORK_2026:
        assert pkg.is_working_day(day), day


# ---------------------------------------------------------------- the folder read


def test_the_folder_is_the_one_the_entry_point_hands_over(tmp_path, monkeypatch):
    """domain.calendar reads no setting: the official files, or the folder its caller names (the entry points pass
    COLLECTIONS_CALENDAR_DIR from infra.config); a new folder forgets the files read from the old one."""
    monkeypatch.setattr(cal, "CALENDAR_DIR", cal.CALENDAR_DIR)  # put back afterwards
    monkeypatch.setattr(cal, "_loaded", {})
    cal.use_folder(None)
    assert cal.CALENDAR_DIR == cal.OFFICIAL_DIR and cal.calendar_path(2026) == cal.OFFICIAL_DIR / "cn-2026.toml"
    assert cal.year_calendar(2026).path.parent == cal.OFFICIAL_DIR
    cal.use_folder(tmp_path)
    assert cal.years_available() == []
    with pytest.raises(cal.CalendarMissing):
        cal.year_calendar(2026)  # not kept from the official folder


def test_starter_reads_the_configured_folder(tmp_path, monkeypatch, capsys):
    import starter

    monkeypatch.setattr(cal, "CALENDAR_DIR", cal.CALENDAR_DIR)
    monkeypatch.setattr(cal, "_loaded", {})
    monkeypatch.setenv("COLLECTIONS_CALENDAR_DIR", str(tmp_path))
    (tmp_path / "cn-2026.toml").write_text(GOOD.replace("days = 3", "days = 4"), encoding="utf-8")
    assert starter.main(["check", "--today", "2026-06-01"]) == 2
    assert cal.CALENDAR_DIR == tmp_path
    assert f"{tmp_path / 'cn-2026.toml'}: breaks[0].rest" in capsys.readouterr().err


# ---------------------------------------------------------------- a missing year fails closed


def test_a_year_with_no_file_raises_calendar_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(cal, "CALENDAR_DIR", tmp_path)  # the suite's folder has test-only stand-ins for later years
    cal.clear_cache()
    with pytest.raises(cal.CalendarMissing) as e:
        cal.is_rest_day(date(2031, 3, 3))
    assert e.value.year == 2031 and e.value.path.name == "cn-2031.toml"
    assert "cn-2031.toml" in str(e.value)
    with pytest.raises(cal.CalendarMissing):
        cal.next_working_day(date(2031, 1, 1))


def test_years_and_days_until_missing(tmp_path, monkeypatch):
    assert {2025, 2026} <= set(cal.years_available())
    monkeypatch.setattr(cal, "CALENDAR_DIR", tmp_path)
    monkeypatch.setattr(cal, "_loaded", {})
    src = Path(__file__).resolve().parent.parent / "policies" / "calendars" / "cn-2026.toml"
    (tmp_path / "cn-2026.toml").write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    assert cal.years_available() == [2026]
    assert cal.days_until_missing(date(2026, 11, 30)) == 32
    assert cal.days_until_missing(date(2026, 12, 31)) == 1
    assert cal.days_until_missing(date(2027, 1, 1)) == 0
    assert cal.missing_warning(date(2026, 10, 31)) is None  # before 1 November: not yet
    w = cal.missing_warning(date(2026, 11, 1))
    assert "cn-2027.toml" in w and "61 day" in w
    assert "now" in cal.missing_warning(date(2027, 3, 1))
    (tmp_path / "cn-2027.toml").write_text(src.read_text(encoding="utf-8").replace("2026", "2027"), encoding="utf-8")
    assert cal.days_until_missing(date(2026, 11, 30)) is None and cal.missing_warning(date(2026, 11, 30)) is None


def test_adding_the_file_releases_the_year(tmp_path, monkeypatch):
    monkeypatch.setattr(cal, "CALENDAR_DIR", tmp_path)
    monkeypatch.setattr(cal, "_loaded", {})
    with pytest.raises(cal.CalendarMissing):
        cal.is_rest_day(date(2026, 2, 21))
    src = Path(__file__).resolve().parent.parent / "policies" / "calendars" / "cn-2026.toml"
    (tmp_path / "cn-2026.toml").write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    assert cal.is_rest_day(date(2026, 2, 21))


# ---------------------------------------------------------------- an invalid file is refused, naming file and field

GOOD = """
year = 2026
[source]
title = "国务院办公厅关于2026年部分节假日安排的通知"
number = "国办发明电〔2025〕7号"
date = 2025-11-04
[[breaks]]
name = "春节"
days = 3
rest = [2026-02-15, 2026-02-16, 2026-02-17]
working = [2026-02-14]
"""


@pytest.mark.parametrize(
    "change, field, reason",
    [
        (
            ("rest = [2026-02-15, 2026-02-16, 2026-02-17]", "rest = [2026-02-15, 2026-02-17, 2026-02-18]"),
            "breaks[0].rest",
            "not contiguous",
        ),
        (
            ("rest = [2026-02-15, 2026-02-16, 2026-02-17]", "rest = [2025-12-31, 2026-01-01, 2026-01-02]"),
            "breaks[0].rest",
            "not in 2026",
        ),
        (("working = [2026-02-14]", "working = [2027-02-13]"), "breaks[0].working", "not in 2026"),
        (("working = [2026-02-14]", "working = [2026-02-15]"), "breaks[0]", "both a rest day and a working day"),
        (("days = 3", "days = 4"), "breaks[0].rest", "the notice says 4"),
        (("working = [2026-02-14]", "working = [2026-02-13]"), "breaks[0].working", "is a weekday"),
        (("rest = [2026-02-15, 2026-02-16, 2026-02-17]", 'rest = ["2026-02-15"]'), "breaks[0].rest", "TOML dates"),
        (('number = "国办发明电〔2025〕7号"', ""), "source.number", "required"),
        (("year = 2026", "year = 2025"), "year", "not 2026"),
        (("2026年部分", "2025年部分"), "source.title", "not the notice for 2026"),
    ],
)
def test_an_invalid_file_is_refused_naming_the_file_and_field(tmp_path, monkeypatch, change, field, reason):
    monkeypatch.setattr(cal, "CALENDAR_DIR", tmp_path)
    monkeypatch.setattr(cal, "_loaded", {})
    (tmp_path / "cn-2026.toml").write_text(GOOD.replace(*change), encoding="utf-8")
    with pytest.raises(InvalidInput) as e:
        cal.is_rest_day(date(2026, 2, 16))
    assert e.value.field == f"{tmp_path / 'cn-2026.toml'}: {field}", e.value
    assert reason in e.value.reason
    assert cal._loaded == {}  # nothing kept


def test_the_good_sample_itself_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(cal, "CALENDAR_DIR", tmp_path)
    monkeypatch.setattr(cal, "_loaded", {})
    (tmp_path / "cn-2026.toml").write_text(GOOD, encoding="utf-8")
    assert cal.is_rest_day(date(2026, 2, 16)) and cal.is_working_day(date(2026, 2, 14))


def test_broken_toml_is_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(cal, "CALENDAR_DIR", tmp_path)
    monkeypatch.setattr(cal, "_loaded", {})
    (tmp_path / "cn-2026.toml").write_text("year = ", encoding="utf-8")
    with pytest.raises(InvalidInput) as e:
        cal.is_rest_day(date(2026, 2, 16))
    assert e.value.field == str(tmp_path / "cn-2026.toml") and "not valid TOML" in e.value.reason


# ---------------------------------------------------------------- warn ahead: gauge, worker log, `starter.py check`, demo


@pytest.fixture
def only_2026(tmp_path, monkeypatch):
    """The calendars as they stand on 30 November 2026: 2026's file, none for 2027 (the configured folder too, which an
    entry point such as starter.main hands to domain.calendar)."""
    src = Path(__file__).resolve().parent.parent / "policies" / "calendars" / "cn-2026.toml"
    monkeypatch.setattr(cal, "CALENDAR_DIR", tmp_path)
    monkeypatch.setenv("COLLECTIONS_CALENDAR_DIR", str(tmp_path))
    monkeypatch.setattr(cal, "_loaded", {})
    (tmp_path / "cn-2026.toml").write_text(src.read_text(encoding="utf-8"), encoding="utf-8")


def test_the_gauge_gives_the_days_left_on_the_worker_metrics_endpoint(only_2026):
    import socket
    import urllib.request

    import structlog
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    from infra import metrics

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rt = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}")))
    with structlog.testing.capture_logs() as logs:
        left = metrics.check_calendar(rt.metric_meter, structlog.get_logger("t"), today=date(2026, 11, 30))
    assert left == 32  # 30 November to 1 January
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    line = next(x for x in body.splitlines() if x.startswith(metrics.CALENDAR_DAYS_LEFT))
    assert float(line.split()[-1]) == left
    assert [e["log_level"] for e in logs] == ["warning"] and "cn-2027.toml" in logs[0]["detail"]
    with structlog.testing.capture_logs() as logs:
        metrics.check_calendar(None, structlog.get_logger("t"), today=date(2026, 10, 31))
    assert logs == []  # before 1 November: no warning yet


def test_starter_check_command(only_2026, capsys):
    import starter

    assert starter.main(["check", "--today", "2026-10-31"]) == 0
    out = capsys.readouterr()
    assert "国办发明电〔2025〕7号" in out.out and "WARNING" not in out.err
    rc = starter.main(["check", "--today", "2026-11-01"])
    out = capsys.readouterr()
    assert rc == 1 and "cn-2027.toml" in out.err and "61 day" in out.err


def test_starter_check_refuses_an_invalid_file(tmp_path, monkeypatch, capsys):
    import starter

    monkeypatch.setattr(cal, "CALENDAR_DIR", tmp_path)
    monkeypatch.setenv("COLLECTIONS_CALENDAR_DIR", str(tmp_path))
    monkeypatch.setattr(cal, "_loaded", {})
    (tmp_path / "cn-2026.toml").write_text(GOOD.replace("days = 3", "days = 4"), encoding="utf-8")
    assert starter.main(["check", "--today", "2026-06-01"]) == 2
    assert "cn-2026.toml: breaks[0].rest" in capsys.readouterr().err


def test_the_demo_warns_from_1_november(only_2026):
    from datetime import datetime

    from devstack import demo

    assert demo.calendar_warning(datetime(2026, 10, 31, 12, tzinfo=UTC)) is None
    assert "cn-2027.toml" in demo.calendar_warning(datetime(2026, 11, 1, 12, tzinfo=UTC))


# ---------------------------------------------------------------- end to end: a case waits for the calendar file


async def test_a_case_waits_for_a_missing_calendar_and_the_file_releases_it(cases, tmp_path, monkeypatch):
    """On the test server's clock, with no calendar file at all: the reminder is refused as calendar_missing and
    asked again daily; once a file for the year is added, the next ask sends it (no worker restart)."""
    from tests.conftest import LADDER_POLICY

    monkeypatch.setattr(cal, "CALENDAR_DIR", tmp_path)
    monkeypatch.setattr(cal, "_loaded", {})
    contact = LADDER_POLICY.contact.model_copy(update={"public_holidays": True})  # any hour, but bound to rest days
    policy = LADDER_POLICY.model_copy(update={"contact": contact})
    h = await cases.start(dpd=1, loan_id="CAL-MISSING-1", policy=policy)
    await cases.advance(hours=2)
    st = await cases.status(h)
    assert "reminder_notice" not in st.steps_done
    refused = [d for d in st.decisions if not d.allowed]
    assert refused and {d.rule for d in refused} == {"calendar_missing"}
    assert all("cn-" in d.reason and ".toml" in d.reason for d in refused)
    # the file arrives (test data for whatever year the test server is in: one break far from today)
    now = await cases.now()
    for year in {now.year, (now + timedelta(days=3)).year}:
        far = date(year, 7, 1) if now.month < 4 or now.month > 9 else date(year, 1, 1)
        (tmp_path / f"cn-{year}.toml").write_text(
            f'year = {year}\n[source]\ntitle = "国务院办公厅关于{year}年部分节假日安排的通知"\nnumber = "test data"\n'
            f'date = {year - 1}-11-01\n[[breaks]]\nname = "test"\nrest = [{far.isoformat()}]\n',
            encoding="utf-8",
        )
    await cases.advance(days=1, hours=1)
    st = await cases.status(h)
    assert "reminder_notice" in st.steps_done
