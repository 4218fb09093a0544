"""An agent upgrade after the switch: pending until the new agent serves, or reverted.

Before `current` moves, the upgrade writes `<root>/upgrade-pending.json` (the bundle, the new and
the previous venv). The new agent, once its API is about to serve, removes it: the upgrade stands.
If it exits before that, the user-level supervisor (app/provision/supervisor.py) puts `current`
back on the previous venv and leaves `upgrade-reverted.json`; the previous agent, started again,
records in the bundle journal that the upgrade failed and was reverted, so the receipt says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from agent.toolkit.durable import write_atomic

__all__ = ["PENDING", "REVERTED", "on_start", "pending"]

PENDING = "upgrade-pending.json"
REVERTED = "upgrade-reverted.json"
log = logging.getLogger(__name__)


def pending(root: Path, bundle: str, new: str, previous: str, version: str) -> None:
    data = {"bundle": bundle, "new": new, "previous": previous, "version": version}
    write_atomic(root / PENDING, json.dumps(data).encode())


def on_start(db: Any, settings: Any) -> None:
    """Confirm an upgrade this agent is, or journal one the supervisor reverted to this agent."""
    from agent.audit import Actor, AuditLog
    from agent.bundles.install import running_install
    from agent.bundles.journal import Journal
    from agent.errors import Invalid

    try:
        here = running_install()
    except Invalid:
        return  # not a kitfleet install: nothing was ever switched
    _staged_outcome(db, settings, here.venv.name)
    waiting = _read(here.root / PENDING)
    if waiting.get("new") == here.venv.name:
        (here.root / PENDING).unlink()
        log.info("agent upgrade to %s confirmed: this agent serves", here.venv.name)
    reverted = _read(here.root / REVERTED)
    if reverted.get("previous") == here.venv.name and isinstance(reverted.get("bundle"), str):
        message = (
            f"kitfleet-agent {reverted.get('version')} was installed in {reverted.get('new')} but exited "
            f"with {reverted.get('exit')} before it served; the previous agent ({here.venv.name}) was "
            "put back and serves"
        )
        Journal(db).finish(reverted["bundle"], "failed", message)
        actor = Actor("", "kitfleet-agent supervisor")
        AuditLog.of(db, settings).append(
            actor, "bundle.import", reverted["bundle"], "failed", {"message": message[:200]}
        )
        (here.root / REVERTED).unlink()
        log.error("%s", message)


def _staged_outcome(db: Any, settings: Any, venv: str) -> None:
    """What root's `kitfleet-agent apply-upgrade` did with an upgrade this agent staged (systemd:
    agent/bundles/apply_staged.py), into the bundle journal and the audit log, once."""
    from agent.audit import Actor, AuditLog
    from agent.bundles.journal import Journal
    from agent.bundles.staged import OUTCOME, read_outcome, stage_dir

    done = read_outcome(Path(settings.data_dir))
    bundle, outcome = done.get("bundle"), done.get("outcome")
    if not isinstance(bundle, str) or outcome not in ("switched", "applied", "failed", "reverted"):
        return
    if outcome == "switched" and done.get("new") != venv:
        return  # root has not finished with it yet
    rows = db.query(
        "SELECT idx, detail FROM bundle_actions WHERE bundle_sha256 = ? AND kind = 'agent_upgrade'", (bundle,)
    )
    ok = outcome in ("switched", "applied")
    serves = f"kitfleet-agent {done.get('version')} serves from {done.get('new')}"
    message = str(done.get("message") or serves)
    if ok and rows and all(_loads(r["detail"]).get("applied_by_root") for r in rows):
        rows = []  # confirmed already when it started (`switched`): journal and audit once
    for row in rows:
        detail = {**_loads(row["detail"]), "applied_by_root": outcome, "message": message[:500]}
        Journal(db).action(
            bundle, row["idx"], "agent_upgrade", f"kitfleet-agent {done.get('version')}",
            "done" if ok else "failed", detail,
        )  # fmt: skip
    if not ok:
        Journal(db).finish(bundle, "failed", message)
    if rows or not ok:
        actor = Actor("", "kitfleet-agent-upgrade.service")
        AuditLog.of(db, settings).append(
            actor, "bundle.agent_upgrade", bundle, "applied" if ok else "failed", {"message": message[:200]}
        )
    (stage_dir(Path(settings.data_dir)) / OUTCOME).unlink(missing_ok=True)
    (log.info if ok else log.error)("staged agent upgrade: %s", message)


def _loads(text: Any) -> dict[str, Any]:
    with contextlib.suppress(TypeError, ValueError):
        data = json.loads(text)
        if isinstance(data, dict):
            return data
    return {}


def _read(path: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return data
    return {}
