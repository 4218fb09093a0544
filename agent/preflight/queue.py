"""Checks of the kit's work: the queue and its database, and the sources stream work reads."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from agent.db import Database
from agent.jobs.paths import data_roots
from agent.jobs.sources import DEVICE_PATTERN, URL_SCHEMES
from agent.wire import PreflightCheck

__all__ = ["check_database", "check_queue", "check_sources"]


def check_database(db: Database) -> PreflightCheck:
    """`PRAGMA quick_check` on the live database: damage found now, not at the next start."""
    try:
        found = [str(r[0]) for r in db.query("PRAGMA quick_check(5)")]
    except sqlite3.Error as exc:
        found = [str(exc)]
    if found == ["ok"]:
        return PreflightCheck(id="database", status="pass", message="integrity quick check ok")
    return PreflightCheck(
        id="database",
        status="fail",
        message=f"the kit's database is damaged: {'; '.join(found)[:300]}",
        action="restart the agent on the kit (`sudo systemctl restart kitfleet-agent`): it "
        "quarantines a damaged database and starts a fresh one; then `kitfleet adopt KIT` again",
    )


def check_queue(db: Database, now: float | None = None) -> PreflightCheck:
    """No job still running past its own timeout (a stuck worker holds its resources)."""
    now = time.time() if now is None else now
    rows = db.query("SELECT id, request, started_at FROM jobs WHERE state = 'running'")
    stuck = [r["id"] for r in rows if _overdue(r, now)]
    queued = db.query("SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued'")[0]["n"]
    said = f"{len(rows)} running, {queued} queued"
    if stuck:
        return PreflightCheck(
            id="queue",
            status="fail",
            message=f"{said}; stuck past its timeout: {', '.join(j[:12] for j in stuck[:3])}",
            action=f"cancel it: `kitfleet jobs cancel KIT {stuck[0][:12]}`",
        )
    return PreflightCheck(id="queue", status="pass", message=said)


def _overdue(row: sqlite3.Row, now: float) -> bool:
    try:
        timeout = float(json.loads(row["request"]).get("timeout_s", 3600.0))
    except (ValueError, AttributeError):
        return False
    return row["started_at"] is not None and now - row["started_at"] > timeout + 60  # a minute of grace


def check_sources(db: Database, configured_roots: list[str], data_dir: Path) -> list[PreflightCheck]:
    """Each source a stream job or schedule will read, and the cameras the kit has."""
    cameras = sorted(str(p) for p in Path("/dev").glob("video*"))
    sources = _planned_sources(db)
    if not sources:
        seen = ", ".join(cameras) if cameras else "no camera"
        return [PreflightCheck(id="sources", status="pass", message=f"no stream source planned ({seen})")]
    roots = data_roots(configured_roots, data_dir)
    return [_check_source(source, dataset, roots, cameras) for source, dataset in sources]


def _planned_sources(db: Database) -> list[tuple[str, str | None]]:
    """(source, dataset) of unfinished stream jobs and enabled stream schedules, each once."""
    unfinished = "SELECT request FROM jobs WHERE kind = 'stream' AND state IN ('queued', 'running')"
    requests = [r["request"] for r in db.query(unfinished)]
    requests += [r["template"] for r in db.query("SELECT template FROM schedules WHERE enabled = 1")]
    found: dict[tuple[str, str | None], None] = {}
    for text in requests:
        request: Any = json.loads(text)
        if not isinstance(request, dict) or request.get("kind") != "stream":
            continue
        params = request.get("params") or {}
        if isinstance(params.get("source"), str):
            found[(params["source"], params.get("dataset"))] = None
    return list(found)[:16]


def _check_source(source: str, dataset: str | None, roots: list[Path], cameras: list[str]) -> PreflightCheck:
    check_id = f"source:{source}"[:64]
    if source.lower().startswith(URL_SCHEMES):
        return PreflightCheck(
            id=check_id,
            status="pass",
            message="a network stream: not probed here, the job checks it when it connects",
        )
    if DEVICE_PATTERN.match(source):
        if source in cameras:
            return PreflightCheck(id=check_id, status="pass", message=f"camera {source} present")
        return PreflightCheck(
            id=check_id,
            status="fail",
            message=f"camera {source} is missing (cameras here: {', '.join(cameras) or 'none'})",
            action="plug the camera in (check its cable), or start the stream on one present: "
            f"`kitfleet stream start KIT --model MODEL --source {cameras[0] if cameras else '/dev/videoN'}`",
        )
    if dataset is not None:
        return PreflightCheck(id=check_id, status="pass", message=f"a file in dataset {dataset}")
    path = Path(source) if Path(source).is_absolute() else roots[0] / source
    if path.exists():
        return PreflightCheck(id=check_id, status="pass", message=f"{path} present")
    return PreflightCheck(
        id=check_id,
        status="fail",
        message=f"{path} is missing",
        action="send it again: `kitfleet stream start KIT --model MODEL --source FILE --upload`",
    )
