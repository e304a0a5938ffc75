"""The PRC's official working calendar, one data file per year, as the State Council publishes it.

Source: each year's 国务院办公厅关于YYYY年部分节假日安排的通知 (the notice is named, dated and numbered in
its file, `policies/calendars/cn-YYYY.toml`). The notice lists each break (放假调休) and the Saturdays and
Sundays that become working days (调休上班); every other Saturday and Sunday is a rest day, every other
weekday a working day (《全国年节及纪念日放假办法》, 《国务院关于职工工作时间的规定》 art. 7).

A year with no file is not guessed: every question about it raises `CalendarMissing`, and the gate fails
closed. Files are read once and kept in memory (a missing year is looked for again on every question, so adding
the file releases what waited for it without a restart). No other I/O; pure otherwise.

A run that knows its folder cannot change under it (the simulator: one run, a fixed set of files) may take the
folder as it is with `frozen()`: inside, a missing year is looked for once, and functions marked `@while_frozen`
(pure functions of their arguments and the calendar, such as domain.legal.period) keep their answers. Outside,
nothing is kept but the files read, as before; a worker never freezes.

A year may also come as data: compliance adds it to the database and a second person approves it (app/calendars.py,
`starter.py calendars`). Whoever reads the database (the worker, the API) hands the approved years to
`use_database` (every minute); an approved database year wins over the year's file, and `in_force(year)` says which
one is used ("file ..." or "database, approved by X at T"). Still no I/O here: the caller reads, this module keeps.

Workflow code does not read this process-wide calendar for its decisions: a year that appears (or changes) while a
case runs would change what a replay computes. A case's run counts with the years it recorded (`Recorded`, built
from its state; domain.case records them from a local activity's answer), so a replay sees what the run saw.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import ParamSpec, TypeVar

from domain.errors import InvalidInput

OFFICIAL_DIR = Path(__file__).resolve().parent.parent / "policies" / "calendars"
# The folder read: the official files, unless the process's entry point names another with `use_folder` (the
# configured COLLECTIONS_CALENDAR_DIR, infra/config.py: the test suite's and the benchmarks' folder, whose
# time-skipping clock runs years ahead, into years whose notice is not out; production never sets it).
CALENDAR_DIR = OFFICIAL_DIR
WARN_FROM = (11, 1)  # from 1 November, a missing file for next year is warned about (notices come out Oct-Dec)


class CalendarMissing(Exception):
    """No official calendar for `year` (no file, no approved database year): what depends on rest days must wait."""

    def __init__(self, year: int, path: Path) -> None:
        super().__init__(
            f"no official holiday calendar for {year}: {path} is missing and no database calendar is approved "
            f"(transcribe 国务院办公厅关于{year}年部分节假日安排的通知; add it with `starter.py calendars add`)"
        )
        self.year = year
        self.path = path


@dataclass(frozen=True)
class Break:
    name: str
    rest: tuple[date, ...]
    working: tuple[date, ...]


@dataclass(frozen=True)
class YearCalendar:
    year: int
    title: str
    number: str
    published: date
    breaks: tuple[Break, ...]
    rest: frozenset[date]  # every rest day inside a break
    working: frozenset[date]  # make-up working days (Saturdays and Sundays)
    path: Path
    origin: str | None = None  # None: the file at `path`; else "database, approved by X at T"

    @property
    def in_force(self) -> str:
        """Which calendar this is, for status, the gate's reasons and the watch: the file or the database row."""
        return self.origin or f"file {self.path.name}"

    def break_of(self, day: date) -> str | None:
        return next((b.name for b in self.breaks if day in b.rest), None)


def use_folder(folder: Path | None) -> None:
    """Read the year files from `folder` from now on (None: the official files); the files read from another folder
    are forgotten."""
    global CALENDAR_DIR
    chosen = Path(folder) if folder is not None else OFFICIAL_DIR
    if chosen != CALENDAR_DIR:
        CALENDAR_DIR = chosen
        clear_cache()


def calendar_path(year: int) -> Path:
    return CALENDAR_DIR / f"cn-{year}.toml"


def _dates(v, where: str, year: int) -> tuple[date, ...]:
    if not isinstance(v, list) or not all(type(d) is date for d in v):
        raise InvalidInput(where, "must be a list of dates written YYYY-MM-DD (TOML dates, not strings)")
    for d in v:
        if d.year != year:
            raise InvalidInput(where, f"{d} is not in {year}")
    if len(set(v)) != len(v):
        raise InvalidInput(where, "a date is listed twice")
    return tuple(sorted(v))


def parse_calendar(data: dict, path: Path, year: int) -> YearCalendar:
    """Validate one year's file; the first error names the file and the field."""
    src = str(path)
    if data.get("year") != year:
        raise InvalidInput(f"{src}: year", f"{data.get('year')!r} is not {year}, the year in the file name")
    source = data.get("source")
    if not isinstance(source, dict):
        raise InvalidInput(f"{src}: source", "the notice (title, number, date) is required")
    for key in ("title", "number"):
        if not isinstance(source.get(key), str) or not source[key].strip():
            raise InvalidInput(f"{src}: source.{key}", "required: copy it from the notice")
    if str(year) not in source["title"]:
        raise InvalidInput(f"{src}: source.title", f"{source['title']!r} is not the notice for {year}")
    if type(source.get("date")) is not date:
        raise InvalidInput(f"{src}: source.date", "required: the notice's date, YYYY-MM-DD")
    raw = data.get("breaks")
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(f"{src}: breaks", "at least one break is required")
    breaks: list[Break] = []
    rest: set[date] = set()
    working: set[date] = set()
    for i, b in enumerate(raw):
        where = f"{src}: breaks[{i}]"
        if not isinstance(b, dict) or not isinstance(b.get("name"), str) or not b["name"]:
            raise InvalidInput(f"{where}.name", "required")
        r = _dates(b.get("rest"), f"{where}.rest", year)
        w = _dates(b.get("working", []), f"{where}.working", year)
        if not r:
            raise InvalidInput(f"{where}.rest", "a break has at least one rest day")
        if (r[-1] - r[0]).days + 1 != len(r):
            raise InvalidInput(
                f"{where}.rest",
                f"not contiguous: {r[0]}..{r[-1]} is {(r[-1] - r[0]).days + 1} days "
                f"but {len(r)} are listed (a break lists every day, weekend days included)",
            )
        if "days" in b and b["days"] != len(r):
            raise InvalidInput(f"{where}.rest", f"{len(r)} days listed but the notice says {b['days']} (共{b['days']}天)")
        for d in w:
            if d.weekday() < 5:
                raise InvalidInput(f"{where}.working", f"{d} is a weekday; make-up working days are Saturdays or Sundays")
        clash = (set(r) | rest) & (set(w) | working)
        if clash:
            raise InvalidInput(f"{where}", f"{min(clash)} is both a rest day and a working day")
        overlap = rest & set(r)
        if overlap:
            raise InvalidInput(f"{where}.rest", f"{min(overlap)} is already in another break")
        rest |= set(r)
        working |= set(w)
        breaks.append(Break(b["name"], r, w))
    return YearCalendar(
        year, source["title"], source["number"], source["date"], tuple(breaks), frozenset(rest), frozenset(working), path
    )


P = ParamSpec("P")
R = TypeVar("R")
_loaded: dict[int, YearCalendar] = {}
_missing: set[int] = set()  # years looked for and not found, remembered only while frozen
_frozen = 0  # depth of `frozen()`
_memos: list[dict] = []  # the caches of the @while_frozen functions, emptied when the folder thaws


@contextmanager
def frozen() -> Iterator[None]:
    """Take the calendar folder as it is for the duration: a missing year is not looked for again, and the
    @while_frozen functions keep their answers. Only for a run whose folder cannot change under it (the simulator)."""
    global _frozen
    _frozen += 1
    try:
        yield
    finally:
        _frozen -= 1
        if not _frozen:
            _thaw()


def is_frozen() -> bool:
    return _frozen > 0


def _thaw() -> None:
    _missing.clear()
    for memo in _memos:
        memo.clear()


def while_frozen_dict() -> dict:
    """A dict emptied whenever the folder thaws (a cache that holds only while frozen)."""
    memo: dict = {}
    _memos.append(memo)
    return memo


def while_frozen(fn: Callable[P, R]) -> Callable[P, R]:
    """Keep `fn`'s answers (by its arguments, all hashable) while the folder is frozen; call it every time otherwise.
    For pure functions of their arguments and the calendar only. An exception is not kept."""
    memo: dict = {}
    _memos.append(memo)

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not _frozen:
            return fn(*args, **kwargs)
        key = (args, tuple(kwargs.items()))
        try:
            return memo[key]
        except KeyError:
            out = memo[key] = fn(*args, **kwargs)
            return out

    return wrapper


def parse_text(text: str, path: Path, year: int) -> YearCalendar:
    """A year's calendar from its TOML text, validated as the loader validates a file (`parse_calendar`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(str(path), f"not valid TOML: {exc}") from None
    return parse_calendar(data, path, year)


def year_of_name(name: str) -> int:
    """The year a calendar file's name gives (cn-YYYY.toml), as the loader names them; InvalidInput otherwise."""
    stem = name.removesuffix(".toml")
    digits = stem.removeprefix("cn-")
    if not name.endswith(".toml") or not stem.startswith("cn-") or not (digits.isdigit() and len(digits) == 4):
        raise InvalidInput("file", f"{name!r}: a calendar file is named cn-YYYY.toml (the year it is for)")
    return int(digits)


def _load(year: int, path: Path) -> YearCalendar:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(str(path), f"not valid TOML: {exc}") from None
    return parse_text(text, path, year)


_database: dict[int, YearCalendar] = {}  # the approved database years, as the caller last handed them over


def use_database(years: list[YearCalendar]) -> None:
    """The approved database years now in force (the whole set: a year left out is no longer one). Each wins over
    its year's file. Called by whoever reads the database (app/calendars.py), every minute."""
    global _database
    _database = {c.year: c for c in years}


def database_years() -> dict[int, YearCalendar]:
    return dict(_database)


def in_force(year: int) -> str | None:
    """Which calendar is in force for `year` ("file cn-YYYY.toml" or "database, approved by X at T"); None: none."""
    try:
        return year_calendar(year).in_force
    except CalendarMissing:
        return None


def year_calendar(year: int) -> YearCalendar:
    """The year's calendar: the approved database year if there is one, else the file; CalendarMissing when neither
    exists (looked for again on every call)."""
    db = _database.get(year)
    if db is not None:
        return db
    cal = _loaded.get(year)
    if cal is None:
        path = calendar_path(year)
        if year in _missing or not path.is_file():
            if _frozen:
                _missing.add(year)
            raise CalendarMissing(year, path)
        cal = _loaded[year] = _load(year, path)
    return cal


def clear_cache() -> None:
    _loaded.clear()
    _thaw()


class Recorded:
    """A case run's own calendar: the years it recorded (its state), and nothing else: any other year is missing,
    whatever files or database years exist now. What a replay of the run counts with is what the run counted with."""

    def __init__(self, years: dict[int, YearCalendar]) -> None:
        self.years = years

    def year_calendar(self, year: int) -> YearCalendar:
        cal = self.years.get(year)
        if cal is None:
            raise CalendarMissing(year, calendar_path(year))
        return cal

    @staticmethod
    def of(year: int, rest: list[date], working: list[date], source: str) -> YearCalendar:
        """One recorded year (only its days are kept; the notice is named by `source`)."""
        return YearCalendar(year, "", "", date(year, 1, 1), (), frozenset(rest), frozenset(working), calendar_path(year), source)


def _year(year: int, cal: Recorded | None) -> YearCalendar:
    return year_calendar(year) if cal is None else cal.year_calendar(year)


def is_public_holiday(day: date) -> bool:
    """Inside an official break (放假调休), whatever the day of the week."""
    return day in year_calendar(day.year).rest


def is_rest_day(day: date, cal: Recorded | None = None) -> bool:
    """A day of an official break, or a Saturday or Sunday that the notice does not make a working day (`cal`: a
    run's recorded years instead of the process-wide calendar)."""
    c = _year(day.year, cal)
    return day in c.rest or (day.weekday() >= 5 and day not in c.working)


def is_working_day(day: date) -> bool:
    return not is_rest_day(day)


def next_working_day(day: date, cal: Recorded | None = None) -> date:
    """The first working day on or after `day` (CalendarMissing if the search enters a year with no calendar)."""
    while is_rest_day(day, cal):
        day += timedelta(days=1)
    return day


def years_available() -> list[int]:
    """The years with a calendar in force: a file or an approved database year."""
    out = set(_database)
    for p in CALENDAR_DIR.glob("cn-*.toml"):
        try:
            out.add(int(p.stem.removeprefix("cn-")))
        except ValueError:
            continue
    return sorted(out)


def days_of_calendar_left(today: date) -> int:
    """Days from `today` to the first day with no calendar file (0: today's year has none). The gauge's value."""
    have = set(years_available())
    year = today.year
    while year in have:
        year += 1
    return max(0, (date(year, 1, 1) - today).days)


def days_until_missing(today: date) -> int | None:
    """Days from `today` to the first day of the first year (this one or the next) with no calendar file.

    0 when this year's own file is missing; None when both this year's and next year's files exist.
    """
    have = set(years_available())
    if today.year not in have:
        return 0
    if today.year + 1 not in have:
        return (date(today.year + 1, 1, 1) - today).days
    return None


def missing_warning(today: date) -> str | None:
    """The warning to give from 1 November (or at once, if this year's file is missing), else None."""
    left = days_until_missing(today)
    if left is None:
        return None
    year = today.year if left == 0 else today.year + 1
    if left > 0 and (today.month, today.day) < WARN_FROM:
        return None
    when = "now" if left == 0 else f"in {left} day(s), on {year}-01-01"
    have = year - 1 if left == 0 else today.year
    last = in_force(have)
    return (
        f"{calendar_path(year)} is missing and no database calendar for {year} is approved: contacts bound to rest "
        f"days will be refused (calendar_missing) {when}. Transcribe 国务院办公厅关于{year}年部分节假日安排的通知 into "
        f"it, or add it as data (starter.py calendars add FILE, approved by a second compliance operator)."
        + (f" In force for {have}: {last}." if last else "")
    )
