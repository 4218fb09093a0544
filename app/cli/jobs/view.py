"""How jobs look in a terminal: one-line rows, a live progress board, result summaries."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

from agent.wire import FINISHED_STATES, JobInfo, ScheduleInfo
from app.cli.common import age
from app.fleet.text import printable

BAR = 24
_MIN_BAR = 6


def what(job: JobInfo) -> str:
    """The job in a few words: its label, else the model it runs or the program."""
    params = job.request.params
    model = " ".join(str(params[k]) for k in ("model", "version") if params.get(k))
    return job.label or model or " ".join(params.get("argv", []))[:40]


def progress_text(job: JobInfo) -> str:
    done, total = job.progress.done, job.progress.total
    return f"{done}/{total}" if total else (str(done) if done else "-")


def job_row(kit: str, job: JobInfo) -> str:
    note = job.waiting or job.error or ""
    return (
        f"{kit:<16} {job.job_id}  {job.kind:<11} {job.state:<11} {progress_text(job):>9}  "
        f"{age(job.created_at):<12} {what(job)}" + (f"  ({note})" if note else "")
    )


def schedule_row(kit: str, s: ScheduleInfo) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.next_run_at)) if s.next_run_at else "never"
    state = "" if s.enabled else "  (paused)"
    return f"{kit:<16} {s.schedule_id}  {s.cron:<16} {s.job.kind:<11} next {when}  {s.name}{state}"


def bar_line(kit: str, job: JobInfo, width: int | None = None) -> str:
    """One job's progress; within `width` columns, when given, by narrowing the bar and cutting
    the note, so the figures at the end ("50%", "5/10") always show."""
    done, total = job.progress.done, job.progress.total
    if job.state == "done" and not total:
        done = total = 1
    pct = f"{100 * done // total:3d}%" if total else "    "
    tail = job.waiting if job.state == "queued" and job.waiting else job.error or ""
    head = printable(f"{kit:<12} {job.job_id[:12]} {job.kind:<11} {job.state:<11} ")
    end = f" {pct} {progress_text(job):>9}"
    bar = BAR if width is None else min(BAR, max(width - len(head) - len(end) - 2, _MIN_BAR))
    filled = min(max(bar * done // total, 0), bar) if total else 0  # whatever counts a kit sends
    line = f"{head}[{'#' * filled}{'-' * (bar - filled)}]{end}"
    note = printable(f"  {tail}") if tail else ""
    if width is None:
        return line + note  # the board adds its own escapes to it
    return fit(line, width) + (fit(note, width - len(line)) if len(line) + 2 < width else "")


def fit(line: str, width: int) -> str:
    """`line` within `width` columns, cut in the middle so its end stays in view."""
    if len(line) <= width:
        return line
    if width < 2:
        return line[-width:] if width > 0 else ""
    keep = width - 1
    return line[: keep // 2] + "…" + line[len(line) - (keep - keep // 2) :]


class Board:
    """Watched jobs, one line each: redrawn in place on a terminal, a line per change otherwise."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.live = self.out.isatty()
        self._jobs: dict[tuple[str, str], JobInfo] = {}
        self._drawn = 0
        self._said: dict[tuple[str, str], tuple[str, int]] = {}
        self._notes: dict[str, str] = {}  # kit -> why its jobs are not moving (it is away)

    def update(self, kit: str, job: JobInfo) -> None:
        self._jobs[(kit, job.job_id)] = job
        self._notes.pop(kit, None)
        if self.live:
            self._redraw()
        else:
            self._plain(kit, job)

    def note(self, kit: str, text: str) -> None:
        """Say why a kit's jobs stand still: under the board on a terminal, on stderr otherwise
        (stdout stays the jobs' lines)."""
        if self.live:
            self._notes[kit] = text
            self._redraw()
        else:
            print(printable(text), file=sys.stderr, flush=True)

    def _redraw(self) -> None:
        size = shutil.get_terminal_size()
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        notes = [fit(printable(n), size.columns - 1) for n in self._notes.values()]
        room = max(size.lines - 2 - len(notes), 1)
        lines = [f"\x1b[2K{line}" for line in self._lines(room, size.columns - 1) + notes]
        self.out.write(up + "\n".join(lines) + "\n\x1b[J")  # [J: a note gone leaves no line behind
        self.out.flush()
        self._drawn = len(lines)

    def _lines(self, room: int, width: int) -> list[str]:
        """One line a job; past the screen's height, unfinished jobs first and a count of the rest
        (lines that scroll away cannot be redrawn)."""
        items = list(self._jobs.items())
        if len(items) > room:
            items.sort(key=lambda item: item[1].state in FINISHED_STATES)
            hidden = items[room - 1 :]
            done = sum(job.state in FINISHED_STATES for _, job in hidden)
            return [
                *(bar_line(kit, job, width) for (kit, _), job in items[: room - 1]),
                fit(f"… and {len(hidden)} more ({done} finished)", width),
            ]
        return [bar_line(kit, job, width) for (kit, _), job in items]

    def _plain(self, kit: str, job: JobInfo) -> None:
        """A line when the state changes or progress passes another tenth, so logs stay short."""
        total = job.progress.total or 0
        tenth = 10 * job.progress.done // total if total else 0
        if self._said.get((kit, job.job_id)) == (job.state, tenth):
            return
        self._said[(kit, job.job_id)] = (job.state, tenth)
        print(bar_line(kit, job), file=self.out, flush=True)


def finished_ok(jobs: list[JobInfo]) -> bool:
    return all(j.state == "done" for j in jobs)


def outcome_line(kit: str, job: JobInfo) -> str:
    if job.state == "done":
        took = (job.finished_at or 0) - (job.started_at or job.created_at)
        return f"done    {kit}: job {job.job_id} {job.kind} in {took:.1f} s"
    if job.state in FINISHED_STATES:
        return f"{job.state.upper():<7} {kit}: job {job.job_id} {job.kind}: {job.error or 'no error given'}"
    return f"{job.state:<7} {kit}: job {job.job_id} {job.kind}"


# --- result summaries ----------------------------------------------------------------------


def summary_lines(kind: str, result: dict[str, Any] | None) -> list[str]:
    """What a finished job found, for a person: the latency table of a benchmark, the counts of a
    batch, the accuracy of an evaluation; then the energy it took."""
    from app.fleet.energy import energy_lines

    return _found_lines(kind, result) + [f"  {line}" for line in energy_lines(result)]


def _found_lines(kind: str, result: dict[str, Any] | None) -> list[str]:
    if not result:
        return ["  (no result summary)"]
    head = (
        [f"  model {result['model']} {result.get('version', '')} ({str(result.get('sha256', ''))[:12]})"]
        if "model" in result
        else []
    )
    if kind == "benchmark":
        return head + benchmark_table(result.get("rows", []))
    if kind == "fine-tune" and (tuned := _fine_tune_lines(result)):
        return head + [f"  {line}" if line else "" for line in tuned]
    if kind in ("evaluate", "stream"):  # a table and the confused pairs; a stream's counts
        return head + [f"  {line}" if line else "" for line in _kind_lines(kind, result)]
    skip = {"model", "version", "sha256", "rows", "energy"}
    return head + [f"  {key}: {_plain(value)}" for key, value in result.items() if key not in skip]


def _kind_lines(kind: str, result: dict[str, Any]) -> list[str]:
    from app.fleet.evaluation import evaluation, evaluation_lines
    from app.fleet.stream import summary_lines as stream_lines

    if kind == "stream":
        return stream_lines(result)
    scored = evaluation(result)
    if scored is None:
        return [f"{key}: {_plain(value)}" for key, value in result.items()]
    return evaluation_lines(scored)


def _fine_tune_lines(result: dict[str, Any]) -> list[str]:
    from app.fleet.finetune import fine_tune, fine_tune_lines

    tuned = fine_tune(result)
    return fine_tune_lines(tuned) if tuned is not None else []


def benchmark_table(rows: list[dict[str, Any]]) -> list[str]:
    columns = (
        ("batch", "batch", "d"),
        ("threads", "threads", "d"),
        ("p50_ms", "p50 ms", ".3f"),
        ("p95_ms", "p95 ms", ".3f"),
        ("p99_ms", "p99 ms", ".3f"),
        ("mean_ms", "mean ms", ".3f"),
        ("throughput_per_s", "items/s", ".1f"),
        ("peak_rss_mb", "peak MB", ".1f"),
    ) + ((("joules_per_1000_inferences", "J/1k inf", ".3g"),) if _has_energy(rows) else ())
    lines = ["  " + " ".join(f"{title:>9}" for _, title, _ in columns)]
    for row in rows:
        if "skipped" in row:
            lines.append(f"  {row['batch']:>9} {row['threads']:>9}  skipped: {row['skipped']}")
            continue
        lines.append("  " + " ".join(f"{row.get(key, 0):>9{fmt}}" for key, _, fmt in columns))
    return lines


def _has_energy(rows: list[dict[str, Any]]) -> bool:
    """Rows from a kit that meters each one's timed runs (an older kit's have no column)."""
    return any("joules_per_1000_inferences" in row for row in rows)


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)
