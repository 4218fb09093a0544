"""The window's Save results… against a rogue kit that lists result files named to climb out of
the chosen folder (issue 15, 2): nothing is written outside it, and the tab says what it refused."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from app.fleet.settings import AppSettings
from app.fleet.text import printable
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from tests.gui.job_windows import open_jobs_tab
from tests.gui.windows import WAIT_MS
from tests.lab.rogue_kit import RogueKit, file_answer, finished_job, json_answer, polled_routes

JOB = "cd" * 12
PAYLOAD = b"written by a rogue kit\n"


def test_save_results_from_a_rogue_kit_writes_only_into_the_chosen_folder(
    qtbot: QtBot, settings: AppSettings, bridge: FleetBridge, tmp_path: Path
) -> None:
    escape = tmp_path / "escaped-absolute"
    bad = ["../../x", "../../../x", "a/../../../../b", str(escape), ".hidden", "ok\x1b[2J.txt"]
    job = finished_job(JOB, label="nightly")
    listing = {
        "job_id": JOB,
        "state": "done",
        "result": job["result"],
        "files": [{"name": name, "size": len(PAYLOAD)} for name in [*bad, "results.jsonl"]],
    }
    saved = tmp_path / "saved"
    with RogueKit(tmp_path / "rogue", fallback=file_answer(PAYLOAD)) as rogue:
        rogue.routes |= polled_routes(rogue, [job]) | {
            f"/v1/jobs/{JOB}": json_answer(job),
            f"/v1/jobs/{JOB}/results": json_answer(listing),
            f"/v1/jobs/{JOB}/results/results.jsonl": file_answer(PAYLOAD),
        }
        kit = rogue.adopt_into(settings.home)
        before = {p for p in tmp_path.rglob("*") if rogue.data_dir not in p.parents}
        failures: list[tuple[str, str]] = []
        window = open_jobs_tab(
            qtbot, bridge, Prompts(choose_results_folder=lambda parent, start: saved), kit.device_id, failures
        )
        tab = window.tabs.jobs
        qtbot.waitUntil(lambda: tab.model.position(JOB) >= 0, timeout=WAIT_MS)
        tab.select_job(JOB)
        tab.save_button.click()
        qtbot.waitUntil(lambda: "Results saved to" in tab.message.text() or bool(failures), timeout=WAIT_MS)
    folder = saved / "rogue" / JOB
    new = {p for p in tmp_path.rglob("*") if rogue.data_dir not in p.parents} - before
    outside = sorted(
        str(p) for p in new if not p.is_relative_to(saved) and settings.home not in [p, *p.parents]
    )
    assert not outside, f"written outside {saved}: {outside}"
    assert not failures, failures
    for nowhere in (escape, tmp_path / "x", saved / "x"):
        assert not nowhere.exists(), nowhere
    assert sorted(p.name for p in folder.iterdir()) == ["job.json", "results.jsonl"]
    said = tab.message.text()
    for name in bad:
        assert f"refused {printable(name)}" in said, (name, said)
    assert "\x1b" not in said
