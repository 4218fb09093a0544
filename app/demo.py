"""`kitfleet demo`: three kits on loopback, found over mDNS, adopted and shown end to end.

Everything stays on this machine: agents listen on 127.0.0.1 and mDNS runs only
on 127.0.0.1, so no traffic reaches the machine's real network.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from app.fleet.discovery import Announcement, async_discover
from app.fleet.localagent import LOOPBACK, LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings

DEMO_KITS = (
    ("flyaway-kit-01", "Fly-away kit (rugged case)"),
    ("edge-ws-ampere", "Edge workstation"),
    ("deploy-srv-01", "Deployable server"),
)


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


async def _discover_and_adopt(fleet: Fleet, agents: list[LocalAgent]) -> None:
    names = {agent.name for agent in agents}
    started = time.monotonic()
    pending = set(names)

    def all_seen(announcement: Announcement) -> bool:
        pending.discard(announcement.name)
        return not pending

    found = await async_discover(fleet.settings.mdns_interfaces, 15.0, stop_when=all_seen)
    seen = {a.name: a.device_id for a in found if a.name in names}
    if set(seen) != names:
        raise SystemExit(f"[demo] mDNS found only {sorted(seen)}; expected {sorted(names)}")
    _say(f"discovered {len(seen)} kits over mDNS on {LOOPBACK} "
         f"in {time.monotonic() - started:.2f} s")
    for agent in agents:
        code = agent.pair_code()  # what the technician reads off the kit's console or label
        kit = await fleet.async_adopt(seen[agent.name], code)
        _say(f"adopted {kit.name:<16} device {kit.device_id[:16]}… with code {code}")
    for kit in fleet.inventory.kits():
        result = await fleet.async_facts(kit)
        cpu, mem = result.families["cpu"], result.families["memory"]
        int8 = cpu.get("int8", {})
        _say(f"{kit.name:<16} {cpu.get('arch')} {cpu.get('model')}, "
             f"{cpu.get('logical_cores')} cores, {mem.get('total_bytes', 0) / 2**30:.1f} GiB, "
             f"INT8 {'recommended' if int8.get('recommended') else 'not recommended'}")


def run_demo(screenshot: Path | None = None, offscreen: bool = False) -> int:
    offscreen = offscreen or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        screenshot = screenshot or Path.cwd() / "kitfleet-demo.png"
    workdir = Path(tempfile.mkdtemp(prefix="kitfleet-demo-"))
    agents = [LocalAgent(workdir / name, name, kit_model=model) for name, model in DEMO_KITS]
    settings = AppSettings.resolve(home=workdir / "app", mdns_interfaces=[LOOPBACK])
    try:
        for agent in agents:
            agent.start()
            _say(f"started agent {agent.name} on https://{agent.address}")
        fleet = Fleet(settings)
        try:
            asyncio.run(_discover_and_adopt(fleet, agents))
        finally:
            fleet.close()
        return _show_window(settings, len(agents), screenshot, offscreen)
    finally:
        for agent in agents:
            agent.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        _say("stopped the demo agents")


def _show_window(settings: AppSettings, kits: int, screenshot: Path | None,
                 offscreen: bool) -> int:
    try:
        from app.gui.main import run_demo_window
    except ImportError as exc:
        print(f"[demo] the desktop window cannot start: {exc}", file=sys.stderr)
        return 1
    _say("opening the window" + (" offscreen" if offscreen else ""))
    code = run_demo_window(settings, adopted=kits, screenshot=screenshot, offscreen=offscreen)
    if screenshot is not None and code == 0:
        _say(f"saved a screenshot of the window to {screenshot}")
    return code
