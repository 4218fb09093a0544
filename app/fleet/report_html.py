"""The field report as one self-contained HTML file: inline CSS, inline SVG, no scripts, no links."""

from __future__ import annotations

import time
from typing import Any

from agent.wire import AuditEntry, JobEnergy, JobInfo, format_device_id
from app.fleet import summary
from app.fleet.alerts import Alert
from app.fleet.evaluation import evaluation, label_rows, most_confused, percent
from app.fleet.ops import KitView, model_rows
from app.fleet.precision_store import StoredChoice
from app.fleet.report_bundles import bundles_section
from app.fleet.report_data import FleetReport, KitReport
from app.fleet.report_markup import e as _e
from app.fleet.report_markup import num as _num
from app.fleet.report_markup import table as _table
from app.fleet.report_markup import when as _when
from app.fleet.report_rollouts import rollouts_section
from app.fleet.svg_chart import Series, line_chart

__all__ = ["render"]

_CSS = """
body { font: 13px/1.45 system-ui, sans-serif; color: #1d1d1d; margin: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px;
  border-bottom: 2px solid #1f5fa8; padding-bottom: 3px; } h3 { font-size: 14px; margin: 16px 0 6px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { border: 1px solid #d0d4d9; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eef2f6; white-space: nowrap; } tr:nth-child(even) td { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 11px; word-break: break-all; }
.muted { color: #666; } .ok { color: #1e7b34; font-weight: bold; }
.bad { color: #b3261e; font-weight: bold; } .warn { color: #8a5a00; font-weight: bold; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid #d0d4d9; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.card b { display: block; font-size: 20px; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
@media print { h2 { page-break-after: avoid; } table, svg { page-break-inside: avoid; } }
"""
_STATUS_CLASS = {"online": "ok", "offline": "warn", "identity_changed": "bad"}


def render(report: FleetReport) -> str:
    body = [
        _header(report),
        _inventory(report.kits),
        _hardware(report.kits),
        _models(report.kits),
        _jobs(report.kits),
        _evaluations(report.kits),
        rollouts_section(list(report.rollouts)),
        _charts(report.kits),
        bundles_section([(k.view.kit.name, k.bundles) for k in report.kits if k.bundles is not None]),
        _alerts(report.alerts),
        _audit(report),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>kitfleet field report {_when(report.generated_at)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _status(view: KitView) -> str:
    text = {"identity_changed": "identity changed", "checking": "not checked"}.get(view.status, view.status)
    age = view.age()
    if view.status != "online" and age is not None:
        text += f" (data from {_when(view.snapshot.taken_at if view.snapshot else None)})"
    return f'<span class="{_STATUS_CLASS.get(view.status, "muted")}">{_e(text)}</span>'


def _header(report: FleetReport) -> str:
    views = [k.view for k in report.kits]
    critical = sum(a.severity == "critical" for a in report.alerts)
    deployed = sum(len(v.snapshot.active_models()) for v in views if v.snapshot)
    cards = [
        ("kits", len(views)),
        ("online", sum(v.live for v in views)),
        ("critical alerts", critical),
        ("warnings", len(report.alerts) - critical),
        ("models serving", deployed),
    ]
    return (
        f'<h1>kitfleet field report</h1><p class="muted">Generated {_when(report.generated_at)} '
        f"by {_e(report.app_label)}, app {_e(report.app_id)}. Metrics cover the last "
        f'{report.hours:g} h of each kit\'s own clock.</p><div class="cards">'
        + "".join(f'<div class="card"><b>{n}</b>{_e(label)}</div>' for label, n in cards)
        + "</div>"
    )


def _inventory(kits: list[KitReport]) -> str:
    rows = []
    for k in kits:
        v, s = k.view, k.view.sample
        snap = v.snapshot
        rows.append(
            [
                f"<b>{_e(v.kit.name)}</b>",
                f"<code>{_e(format_device_id(v.kit.device_id))}</code>",
                _e(v.kit.address),
                _status(v),
                _e(_when(v.kit.last_seen_at)),
                _e(", ".join(v.tags)),
                _num(s.cpu_percent if s else None, suffix=" %"),
                _num(s.memory_percent if s else None, suffix=" %"),
                _num(s.disk_free_bytes / summary.GIB if s and s.disk_free_bytes else None, "{:.1f}", " GiB"),
                _num(s.temperature_c if s else None, suffix=" °C"),
                _num(s.battery_percent if s else None, suffix=" %"),
                _e(", ".join(snap.active_models()) if snap else ""),
                _num(snap.count_jobs("running") if snap else None),
                _num(snap.count_jobs("queued") if snap else None),
                _preflight(k.preflight),
            ]
        )
    return "<h2>Fleet inventory</h2>" + _table(
        [
            "Kit",
            "Device ID",
            "Address",
            "Status",
            "Last seen",
            "Tags",
            "CPU",
            "Memory",
            "Disk free",
            "Temp",
            "Battery",
            "Serving",
            "Running",
            "Queued",
            "Pre-flight",
        ],
        rows,
        "no kits adopted",
    )


def _preflight(entry: AuditEntry | None) -> str:
    """`ready at 07:12, checked by …`, or what was not ready; "not checked" when never run."""
    if entry is None:
        return '<span class="muted">not checked</span>'
    when = time.strftime("%H:%M", time.localtime(entry.ts))
    failed = [str(n) for n in entry.detail.get("not_passed") or [] if str(n).endswith(": fail")]
    verdict = f"ready at {when}" if entry.outcome == "ready" else f"<b>not ready</b> at {when}"
    why = f" ({_e(', '.join(failed))})" if failed else ""
    return f"{verdict}{why}, checked by {_e(entry.actor_label)}"


def _hardware(kits: list[KitReport]) -> str:
    rows = [
        [
            f"<b>{_e(k.view.kit.name)}</b>",
            _e(k.view.kit.kit_model),
            _e(summary.cpu_model(k.facts)),
            _num(summary.memory_gib(k.facts), "{:.1f}", " GiB"),
            _e(summary.accelerators(k.facts)),
            _e(summary.int8_advice(k.facts)),
            _e(summary.os_name(k.facts)),
            _e(k.view.kit.agent_version),
            _e(_when(k.facts_at)),
        ]
        for k in kits
    ]
    return "<h2>Hardware and accelerators</h2>" + _table(
        ["Kit", "Model", "CPU", "Memory", "Accelerators", "INT8", "OS", "Agent", "Facts from"], rows
    )


def _models(kits: list[KitReport]) -> str:
    rows = []
    for k in kits:
        for r in model_rows(k.view.snapshot.models if k.view.snapshot else []):
            role = "serving" if r["active"] else ("previous (rollback)" if r["previous"] else "installed")
            rows.append(
                [
                    _e(k.view.kit.name),
                    f"<b>{_e(r['model'])}</b>",
                    _e(r["version"]),
                    _e(role),
                    _e(r["precision"]),
                    _num(r["size_bytes"] / 1024, "{:.0f}", " KiB"),
                    f"<code>{_e(r['sha256'])}</code>",
                    _e(_when(r["installed_at"])),
                ]
            )
    return (
        "<h2>Deployed models</h2>"
        + _table(
            ["Kit", "Model", "Version", "Role", "Precision", "Size", "sha256", "Installed"],
            rows,
            "no models on any kit",
        )
        + _precision_choices(kits)
    )


def _precision_choices(kits: list[KitReport]) -> str:
    """Which variant each kit was measured to run best, and why (`choose-precision`)."""
    rows = [_choice_row(k.view.kit.name, c) for k in kits for c in k.precision]
    if not rows:
        return ""
    return "<h3>Precision chosen per kit</h3>" + _table(
        ["Kit", "Model", "Version", "Precision", "Why", "Decided"], rows
    )


def _choice_row(kit: str, c: StoredChoice) -> list[str]:
    decided = _e(_when(c.decided_at))
    return [_e(kit), f"<b>{_e(c.model)}</b>", _e(c.version), _e(c.precision), _e(c.reason), decided]


def _jobs(kits: list[KitReport]) -> str:
    rows = [
        [
            _e(k.view.kit.name),
            _e(j.kind),
            _e(j.label or j.job_id[:12]),
            f'<span class="{"ok" if j.state == "done" else "bad" if j.state == "failed" else "muted"}">'
            f"{_e(j.state)}</span>",
            _e(j.request.params.get("model", "")),
            _e(_when(j.finished_at)),
            _figures(j),
            _energy(j),
        ]
        for k in kits
        if k.view.snapshot
        for j in k.view.snapshot.jobs
    ]
    return "<h2>Jobs</h2>" + _table(
        ["Kit", "Kind", "Job", "State", "Model", "Finished", "Figures", "Energy"], rows, "no jobs on any kit"
    )


def _energy(job: JobInfo) -> str:
    """What the job's work cost, with its source; what it covers as the cell's tooltip."""
    energy = JobEnergy.of_result(job.result)
    if energy is None:
        return ""
    return f'<span title="{_e(energy.detail())}">{_e(energy.line())}</span>'


def _figures(job: JobInfo) -> str:
    """The numbers that matter of a finished job: latency, accuracy, counts, or why it failed."""
    if job.error:
        return f'<span class="bad">{_e(job.error[:200])}</span>'
    result: dict[str, Any] = job.result or {}
    if job.kind == "benchmark":
        return "<br>".join(
            _e(
                f"batch {r.get('batch')} × {r.get('threads')} thr: p50 {r.get('p50_ms')} ms, "
                f"p95 {r.get('p95_ms')} ms, {r.get('throughput_per_s')}/s, {r.get('peak_rss_mb')} MB"
            )
            if "p50_ms" in r
            else _e(f"batch {r.get('batch')}: {r.get('skipped', '')}")
            for r in result.get("rows", [])
        )
    if job.kind == "evaluate" and result.get("top1_accuracy") is not None:
        return _e(
            f"top-1 {result['top1_accuracy']:.1%}, top-5 {result.get('top5_accuracy') or 0:.1%} "
            f"on {result.get('images')} images"
        )
    shown = {k: v for k, v in result.items() if isinstance(v, (int, float, str)) and len(str(v)) < 80}
    return _e(", ".join(f"{k} {v}" for k, v in list(shown.items())[:6]))


def _evaluations(kits: list[KitReport]) -> str:
    """Each finished evaluation's per-label table and the pairs its model confuses most."""
    parts = []
    for k in kits:
        for job in k.view.snapshot.jobs if k.view.snapshot else []:
            scored = evaluation(job.result) if job.kind == "evaluate" and job.state == "done" else None
            if scored is None or not scored.per_label:
                continue
            model = f"{(job.result or {}).get('model', '')} {(job.result or {}).get('version', '')}"
            rows = [
                [_e(r.label), _num(r.precision, "{:.1%}"), _num(r.recall, "{:.1%}"), _num(r.images)]
                for r in label_rows(scored)
            ]
            confused = [[_e(c.actual), _e(c.predicted), _num(c.count)] for c in most_confused(scored)]
            parts.append(
                f"<h3>{_e(k.view.kit.name)}: {_e(model.strip())} (job {_e(job.job_id[:12])}, "
                f"top-1 {_e(percent(scored.top1_accuracy))})</h3>"
                + _table(["Label", "Precision", "Recall", "Images"], rows)
                + _table(["Actual", "Predicted as", "Images"], confused, "no image was mistaken")
            )
    return "<h2>Evaluations</h2>" + "".join(parts) if parts else ""


def _charts(kits: list[KitReport]) -> str:
    parts = ["<h2>Metrics</h2>"]
    for k in kits:
        h = k.history
        if not h:
            parts.append(f'<h3>{_e(k.view.kit.name)}</h3><p class="muted">no samples yet</p>')
            continue
        load = [
            Series("CPU %", "#1f5fa8", [(s.ts, s.cpu_percent) for s in h]),
            Series("memory %", "#8e44ad", [(s.ts, s.memory_percent) for s in h]),
            Series("disk used %", "#b36b00", [(s.ts, s.disk_percent) for s in h]),
        ]
        heat = [
            Series(
                "hottest sensor °C",
                "#b3261e",
                [(s.ts, s.temperature_c) for s in h if s.temperature_c is not None],
            ),
            Series(
                "battery %",
                "#1e7b34",
                [(s.ts, s.battery_percent) for s in h if s.battery_percent is not None],
            ),
        ]
        heat_chart = (
            line_chart("Temperature and battery", heat)
            if any(s.points for s in heat)
            else '<p class="muted">no temperature sensor or battery reported</p>'
        )
        parts.append(
            f'<h3>{_e(k.view.kit.name)}</h3><div class="charts">'
            + line_chart("Load", load, 100, "%")
            + heat_chart
            + "</div>"
        )
    return "".join(parts)


def _alerts(alerts: list[Alert]) -> str:
    rows = [
        [
            f'<span class="{"bad" if a.severity == "critical" else "warn"}">{_e(a.severity)}</span>',
            _e(a.kit),
            _e(a.kind),
            _e(a.message),
        ]
        for a in alerts
    ]
    return "<h2>Alerts</h2>" + _table(["Severity", "Kit", "Kind", "What"], rows, "no alerts")


def _audit(report: FleetReport) -> str:
    app_state = _chain_text(report.app_chain_problems, len(report.app_audit))
    parts = [
        "<h2>Audit trail</h2>",
        f"<h3>This app ({_e(report.app_label)})</h3><p>{app_state}</p>",
        _audit_table(report.app_audit, with_kit=True),
    ]
    for k in report.kits:
        chain = k.view.chain
        state = (
            f'<span class="bad">{_e(chain.summary())}</span>'
            if chain.problems
            else f'<span class="ok">{_e(chain.summary())}</span>'
            if chain.checked_at
            else f'<span class="muted">{_e(chain.summary())}</span>'
        )
        parts += [f"<h3>{_e(k.view.kit.name)}</h3><p>Chain: {state}</p>", _audit_table(k.audit)]
    return "".join(parts)


def _chain_text(problems: list[str], shown: int) -> str:
    if problems:
        return f'Chain: <span class="bad">BROKEN: {_e(problems[0])}</span>'
    return f'Chain: <span class="ok">verified</span> <span class="muted">(newest {shown} shown)</span>'


def _audit_table(entries: list[AuditEntry], with_kit: bool = False) -> str:
    rows = [
        [
            _num(e.seq),
            _e(_when(e.ts)),
            _e(e.detail.get("kit", ""))
            if with_kit
            else _e(f"{e.actor_label} [{e.actor_id[:8]}]" if e.actor_id else e.actor_label),
            _e(e.action),
            _e(e.target),
            f'<span class="{"ok" if e.outcome == "ok" else "bad"}">{_e(e.outcome)}</span>',
        ]
        for e in reversed(entries)
    ]
    return _table(
        ["#", "When", "Kit" if with_kit else "Actor", "Action", "Target", "Outcome"], rows, "no entries"
    )
