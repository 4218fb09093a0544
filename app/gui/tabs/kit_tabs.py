"""The lower pane: the selected kit's Hardware, Models, Try-it, Jobs and Live tabs."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QTabWidget, QWidget

from app.gui.bridges.field_bridge import FieldBridge
from app.gui.bridges.jobs_bridge import JobsBridge
from app.gui.bridges.models_bridge import ModelsBridge
from app.gui.bridges.stream_bridge import StreamBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.tables.kit_row import KitRow
from app.gui.tabs.details import DetailsPane
from app.gui.tabs.field_panel import FieldPanel
from app.gui.tabs.jobs_tab import JobsTab
from app.gui.tabs.live_view import LiveView
from app.gui.tabs.models_tab import ModelsTab
from app.gui.tabs.try_it import TryItPanel

__all__ = ["KitTabs"]


class KitTabs(QTabWidget):
    def __init__(
        self,
        bridge: ModelsBridge,
        jobs: JobsBridge,
        streams: StreamBridge,
        prompts: Prompts,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.details = DetailsPane()
        self.models = ModelsTab(bridge, prompts)
        self.field_bridge = FieldBridge.beside(bridge)  # Try-it's Label as…, and the Field data tab
        self.try_it = TryItPanel(bridge, prompts, field=self.field_bridge)
        self.jobs = JobsTab(jobs, prompts)
        self.addTab(self.details, "Hardware")
        self.addTab(self.models, "Models")
        self.addTab(self.try_it, "Try it")
        self.live = LiveView(streams)
        self.addTab(self.jobs, "Jobs")
        self.addTab(self.live, "Live")
        self.field = FieldPanel(self.field_bridge, bridge)
        self.addTab(self.field, "Field data")
        self.field.status.connect(self.try_it.status)  # the window shows Try-it's on its status bar
        self._follow: list[Callable[[KitRow | None], None]] = [
            tab.show_row for tab in (self.details, self.models, self.try_it, self.jobs, self.live, self.field)
        ]

    def add_page(self, page: QWidget, title: str, show_row: Callable[[KitRow | None], None]) -> None:
        """One more tab, told of the selected kit through `show_row`."""
        self.addTab(page, title)
        self._follow.append(show_row)

    def show_row(self, row: KitRow | None) -> None:
        for show in self._follow:
            show(row)
