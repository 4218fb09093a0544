"""The field report's Rollouts section: each staged rollout, where it stands or how it ended,
and every kit's state in it (issue 21). Drawn with the report's own markup and classes."""

from __future__ import annotations

from app.fleet.report_markup import e as _e
from app.fleet.report_markup import when
from app.fleet.rollout.record import Rollout

__all__ = ["rollouts_section"]

_STATE_CLASS = {"passed": "ok", "failed": "bad", "rolled-back": "bad", "offline-waiting": "warn"}
_PHASE_CLASS = {"done": "ok", "failed": "bad", "aborted": "warn"}


def rollouts_section(rollouts: list[Rollout]) -> str:
    if not rollouts:
        return '<h2>Rollouts</h2><p class="muted">no staged rollouts</p>'
    return "<h2>Rollouts</h2>" + "".join(_rollout(r) for r in rollouts)


def _rollout(r: Rollout) -> str:
    phase = f'<span class="{_PHASE_CLASS.get(r.phase, "muted")}">{_e(r.phase)}</span>'
    shares = ", ".join(f"{w:.0%}" for w in r.waves)
    head = (
        f"<h3>{_e(r.rollout_id)}: {_e(r.model)} {_e(r.version)} {phase}</h3>"
        f'<p class="muted">started {_when(r.created_at)}, finished {_when(r.finished_at)}; canaries then '
        f"{_e(shares)} of the rest; soak {r.soak_s:g} s; max failures {_e(r.thresholds.max_failures)}"
        + (f"; stopped because {_e(r.reason)}" if r.reason else "")
        + "</p>"
    )
    refused = "".join(f"<li>{_e(n)}: {_e(why)}</li>" for n, why in r.refused.items())
    rows = "".join(
        f"<tr><td>{'canary' if k.wave == 0 else f'wave {k.wave}'}</td><td>{_e(k.name)}</td>"
        f'<td>{_e(k.version)}</td><td><span class="{_STATE_CLASS.get(k.state, "muted")}">{_e(k.state)}'
        f"</span></td><td>{_e(k.previous_version or '-')}</td><td>{_e(k.detail)}</td></tr>"
        for k in sorted(r.kits, key=lambda k: (k.wave, k.name))
    )
    table = (
        "<table><thead><tr><th>wave</th><th>kit</th><th>version</th><th>state</th><th>previous</th>"
        f"<th>detail</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return head + table + (f"<p>left out by the model's gates:</p><ul>{refused}</ul>" if refused else "")


def _when(ts: float | None) -> str:
    return when(ts, "not yet")
