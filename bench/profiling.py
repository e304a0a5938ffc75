"""py-spy on a worker process (`--profile`): a raw flame graph and a summary of the hot spots.

py-spy is a dev tool (pip install py-spy); without it --profile says so and the run goes on.
"""

from __future__ import annotations

import collections
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from infra.config import ROOT

OUT = ROOT / "var" / "bench"


def pyspy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, name: str, pid: int, rate: int = 100) -> None:
        self.name = name
        self.pid = pid
        self.rate = rate
        self.raw = OUT / f"profile-{name}.raw"
        self.summary_path = str(OUT / f"profile-{name}.txt")
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Profiler:
        exe = pyspy()
        if exe is None:
            print("--profile: py-spy not found (pip install py-spy); not profiling", file=sys.stderr)
            return self
        OUT.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(self.pid), "-o", str(self.raw), "-f", "raw", "-r", str(self.rate), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.raw.exists():
            Path(self.summary_path).write_text(summarize(self.raw), encoding="utf-8")


def summarize(raw: Path, top_self: int = 30, top_inclusive: int = 80) -> str:
    """Self and inclusive shares of the samples (all threads, idle excluded), by function."""
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = [re.sub(r":\d+\)", ")", f) for f in stack.split(";")]
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    lines = [f"{total} samples", "", "self:"]
    lines += [f"{100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top_self)]
    lines += ["", "inclusive:"]
    lines += [f"{100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(top_inclusive)]
    return "\n".join(lines) + "\n"
