"""The field report's Bundles section: per kit, what reached it by bundle (made on this laptop,
and what the kit's receipts said of each) and what came back (the receipts merged) (issue 22).
Drawn with the report's own markup and classes."""

from __future__ import annotations

from app.fleet.receipts import BundleTraffic
from app.fleet.receipts.traffic import NOT_REPORTED
from app.fleet.report_markup import e as _e
from app.fleet.report_markup import when

__all__ = ["bundles_section"]

_OUTCOME_CLASS = {
    "applied": "ok",
    "failed": "bad",
    "refused": "bad",
    "applying": "warn",
    NOT_REPORTED: "muted",
}


def bundles_section(kits: list[tuple[str, BundleTraffic]]) -> str:
    """`kits`: (kit name, its traffic), in the report's kit order."""
    parts = [_kit(name, traffic) for name, traffic in kits if not traffic.empty]
    if not parts:
        return '<h2>Bundles and receipts</h2><p class="muted">nothing carried by bundle yet</p>'
    return "<h2>Bundles and receipts</h2>" + "".join(parts)


def _kit(name: str, t: BundleTraffic) -> str:
    sent = "".join(
        f"<tr><td>{_e(b.file)}</td><td class='num'>{b.sequence}</td><td>{_when(b.created_at)}</td>"
        f"<td>{_e(', '.join(b.carried))}</td><td>{_outcome(b.outcome)}</td>"
        f"<td>{_when(b.reported_at)}</td></tr>"
        for b in t.sent
    )
    sent_shas = {b.sha256 for b in t.sent}
    others = "".join(
        f"<tr><td><code>{_e(i.bundle_sha256[:16])}</code></td><td class='num'>{_e(i.sequence)}</td>"
        f"<td>{_outcome(i.outcome)}</td><td>{_when(i.at)}</td><td>{_e(i.message)}</td></tr>"
        for i in t.imports
        if i.bundle_sha256 not in sent_shas
    )
    back = "".join(
        f"<tr><td class='num'>{r.seq}</td><td>{_when(r.exported_at)}</td><td>{_when(r.received_at)}</td>"
        f"<td class='num'>{r.counts.get('jobs', 0)}</td><td class='num'>{r.counts.get('samples_new', 0)}</td>"
        f"<td class='num'>{r.counts.get('audit_new', 0)}</td><td>{_e('; '.join(r.notes))}</td></tr>"
        for r in t.receipts
    )
    html_parts = [f"<h3>{_e(name)}</h3>"]
    if sent:
        html_parts.append(
            _table(
                ["Bundle", "Sequence", "Made", "Carried", "On the kit", "Reported"], sent, "Sent by bundle"
            )
        )
    if others:
        html_parts.append(
            _table(["Bundle sha256", "Sequence", "Outcome", "When", "Message"], others, "Also imported")
        )
    if back:
        headers = ["Receipt", "Exported", "Received", "Jobs", "New samples", "New audit entries", "Notes"]
        html_parts.append(_table(headers, back, "Came back by receipt"))
    return "".join(html_parts)


def _table(headers: list[str], rows: str, caption: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<p><b>{_e(caption)}</b></p><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _outcome(outcome: str) -> str:
    return f'<span class="{_OUTCOME_CLASS.get(outcome, "muted")}">{_e(outcome)}</span>'


def _when(ts: float | None) -> str:
    return when(ts, "-")
