"""Shared benchmark plumbing: profiles, machine facts, medians and percentiles, tables, RESULTS.md."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
CACHE = Path(os.environ.get("LOUPE_BENCH_CACHE", Path.home() / ".cache" / "loupe"))
FIFTYONE_VENV = CACHE / "bench-fiftyone-venv"


@dataclass(frozen=True, slots=True)
class Profile:
    """How big a run is: `quick` (minutes, for `make bench`) or `full` (the issue's sizes)."""

    name: str

    @property
    def full(self) -> bool:
        return self.name == "full"

    def pick(self, quick: Any, full: Any) -> Any:
        return full if self.full else quick


@dataclass(slots=True)
class Table:
    """A titled markdown table plus free-text notes printed under it."""

    title: str
    headers: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *row: Any) -> None:
        self.rows.append(list(row))

    def markdown(self) -> str:
        cells = [[fmt(c) for c in row] for row in self.rows]
        lines = [f"#### {self.title}", "", "| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def fmt(value: Any) -> str:
    """Numbers at a precision a reader can compare: 3 significant digits, thousands separated."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3g}"
        return f"{value:.2e}"
    return str(value)


# -- statistics -------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between ranks."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def repeat(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of `repeats` calls."""
    return [timed(fn)[0] for _ in range(repeats)]


def ms(seconds: float) -> float:
    return seconds * 1000.0


# -- the machine ------------------------------------------------------------------


def warm_job_kinds() -> None:
    """Import the job kinds before the clock starts, as a running server has.

    The first job of a process imports every kind's module (signals, clustering, the
    evaluations' scikit-learn: seconds); a server does that at start-up
    (service/api/routes/jobs.py), so a timing that included it would measure the imports.
    """
    from service.jobs.kinds import kinds  # here: nothing of Loupe is imported at this module's top

    kinds()


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def fiftyone_version() -> str:
    python = FIFTYONE_VENV / "bin" / "python"
    if not python.exists():
        return "-"
    code = "from importlib import metadata; print(metadata.version('fiftyone'))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or "-"


def machine() -> dict[str, str]:
    """What RESULTS.md records with every run."""
    versions = {d: version_of(d) for d in ("torch", "open_clip_torch", "qdrant-edge-py", "onnxruntime")}
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "memory": f"{memory_gib():.1f} GiB",
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "torch": versions["torch"],
        "open_clip": versions["open_clip_torch"],
        "qdrant-edge": versions["qdrant-edge-py"],
        "onnxruntime": versions["onnxruntime"],
        "fiftyone": fiftyone_version(),
        "load": loadavg(),
    }


def machine_line(info: dict[str, str] | None = None) -> str:
    info = info or machine()
    return ", ".join(f"{k}: {v}" for k, v in info.items())


# -- output -----------------------------------------------------------------------


def append_results(text: str, path: Path = RESULTS) -> None:
    """Append to RESULTS.md under an exclusive lock (other runs append to it too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.write(text if text.endswith("\n") else text + "\n")
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def report(name: str, profile: Profile, tables: Sequence[Table], *, started_load: str) -> str:
    """Print the tables and append them, with machine facts and load, to RESULTS.md."""
    info = machine()
    head = (
        f"### {name} ({profile.name} profile), {info['date']}\n\n"
        f"Machine: {machine_line(info)} (load at start: {started_load}).\n\n"
    )
    body = head + "\n".join(t.markdown() for t in tables)
    print(body, flush=True)
    append_results(body + "\n")
    return body


def emit_json(obj: Any) -> None:
    """One JSON line on stdout (for benchmarks that talk to a worker process)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this one, minus LOUPE_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(extra)
    return env
