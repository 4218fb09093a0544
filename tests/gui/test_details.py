"""The details pane: families grouped, unavailable ones with their reason, last-known banner."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from agent.wire import Int8Advice, RuntimeFacts, favoured_precisions
from app.gui.tables.kit_row import KitRow
from app.gui.tabs.details import DetailsPane
from tests.gui import samples
from tests.gui.trees import child_item, child_values, top_items


def adopted_row(state: str, age_s: float = 0.0) -> KitRow:
    result = samples.facts(age_s=age_s)
    row = KitRow(samples.DEVICE_A).with_status(samples.status(state))  # type: ignore[arg-type]
    return row.with_facts(result.families, result.collected_at)


def test_families_grouped_and_unavailable_ones_explained(qtbot: QtBot) -> None:
    pane = DetailsPane()
    qtbot.addWidget(pane)
    pane.show_row(adopted_row("online"))
    families = top_items(pane.tree)
    assert list(families) == ["CPU", "Memory", "Accelerators", "Power"]
    assert child_values(families["CPU"])["arch"] == "aarch64"
    assert child_values(families["CPU"])["int8"] == "via dotprod, recommended yes"  # in the contract's order
    assert child_values(families["Memory"])["total"] == "64.0 GiB"
    assert families["Power"].text(1) == "not available: no battery reported"
    assert pane.banner.isHidden()
    assert pane.shown_device() == samples.DEVICE_A


def test_offline_kit_shows_last_known_facts_with_a_banner(qtbot: QtBot) -> None:
    pane = DetailsPane()
    qtbot.addWidget(pane)
    pane.show_row(adopted_row("offline", age_s=180))
    assert not pane.banner.isHidden()
    assert pane.banner.text() == "offline — showing facts from 3 min ago"
    assert "CPU" in top_items(pane.tree)


def test_unadopted_kit_explains_how_to_see_its_hardware(qtbot: QtBot) -> None:
    pane = DetailsPane()
    qtbot.addWidget(pane)
    pane.show_row(KitRow(samples.DEVICE_A).with_sighting(samples.sighting()))
    assert "not adopted" in pane.placeholder.text()
    assert pane.tree.isHidden()
    assert pane.shown_device() is None


def test_the_runtime_says_which_precision_each_provider_favours(qtbot: QtBot) -> None:
    pane = DetailsPane()
    qtbot.addWidget(pane)
    families = samples.families()
    families.runtime = RuntimeFacts(
        available=True,
        providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        precision_by_provider=favoured_precisions(
            ["CUDAExecutionProvider", "CPUExecutionProvider"], Int8Advice(accelerated=True, via="dotprod")
        ),
    )
    row = KitRow(samples.DEVICE_A).with_status(samples.status("online")).with_facts(families, 1.0)
    pane.show_row(row)
    runtime = top_items(pane.tree)["Runtime"]
    favoured = child_item(runtime, "precision by provider")
    assert child_values(favoured) == {"CUDAExecutionProvider": "fp16", "CPUExecutionProvider": "int8"}
    cpu = child_item(favoured, "CPUExecutionProvider")
    assert "dot-product" in child_values(cpu)["reason"]
