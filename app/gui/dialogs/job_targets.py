"""Which kits a new job goes to: the selected kit, every kit carrying a tag, or every adopted kit.

Tags are the inventory's (Fleet ▸ Edit Tags…), as the fleet table shows them; the same job,
with one idempotency key, goes to each kit targeted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QWidget

from app.gui.tables.kit_row import KitRow

__all__ = ["JobTargets", "Target", "targets_for"]


@dataclass(frozen=True)
class Target:
    text: str  # as the choice reads
    device_ids: tuple[str, ...]
    names: tuple[str, ...]
    away: tuple[str, ...]  # names of the kits not online now


def targets_for(device_id: str, rows: Sequence[KitRow]) -> list[Target]:
    """This kit first, then each tag among the adopted kits, then every adopted kit."""
    adopted = sorted((r for r in rows if r.kit is not None), key=lambda r: r.name)
    own = [r for r in adopted if r.device_id == device_id]
    choices = [_target(f"only {own[0].name if own else 'this kit'}", own)] if own else []
    tags = sorted({t for r in adopted for t in (r.view.tags if r.view else [])})
    for tag in tags:
        tagged = [r for r in adopted if r.view is not None and tag in r.view.tags]
        choices.append(_target(f"every kit tagged “{tag}” ({_kits(len(tagged))})", tagged))
    if len(adopted) > 1:
        choices.append(_target(f"every adopted kit ({_kits(len(adopted))})", adopted))
    return choices


def _target(text: str, rows: list[KitRow]) -> Target:
    return Target(
        text,
        tuple(r.device_id for r in rows),
        tuple(r.name for r in rows),
        tuple(r.name for r in rows if r.row_status != "online"),
    )


def _kits(count: int) -> str:
    return f"{count} kit" if count == 1 else f"{count} kits"


class JobTargets(QGroupBox):
    changed = Signal()  # the choice, and so the note's text, changed: the dialog refits

    def __init__(self, device_id: str, rows: Sequence[KitRow], parent: QWidget | None = None) -> None:
        super().__init__("Send to", parent)
        self.combo = QComboBox()
        self.note = QLabel()
        self.note.setWordWrap(True)
        for target in targets_for(device_id, rows) or [Target("this kit", (device_id,), (), ())]:
            self.combo.addItem(target.text, target)
        form = QFormLayout(self)
        form.addRow("Kits:", self.combo)
        form.addRow("", self.note)
        self.combo.currentIndexChanged.connect(self._on_choice)
        self._on_choice()

    def target(self) -> Target:
        chosen = self.combo.currentData()
        assert isinstance(chosen, Target)
        return chosen

    def choose(self, text_start: str) -> None:
        """Choose the first target whose text starts so (tests and callers name targets by text)."""
        for position in range(self.combo.count()):
            if self.combo.itemText(position).startswith(text_start):
                self.combo.setCurrentIndex(position)
                return
        raise ValueError(f"no target {text_start!r}")

    def narrow(self, device_ids: Sequence[str], names: Sequence[str]) -> None:
        """Only these kits from now on (the others took the job already)."""
        text = f"only {', '.join(names)} (not sent yet)"
        self.combo.addItem(text, Target(text, tuple(device_ids), tuple(names), ()))
        self.combo.setCurrentIndex(self.combo.count() - 1)

    @Slot()
    def _on_choice(self) -> None:
        target = self.target()
        lines = [", ".join(target.names)] if len(target.names) > 1 else []
        if target.away:
            lines.append(
                f"Not online now: {', '.join(target.away)}. The app tries again for a while; "
                "a kit still away is listed after Submit, to send to later."
            )
        self.note.setText("\n".join(lines))
        self.note.setVisible(bool(lines))
        self.changed.emit()
