"""The inputs a model was unsure about leave the kit in a receipt (issue 23, last bullet): a real
agent runs a batch-infer job with keep_unsure on the bundled digits classifier, `kitfleet-agent
export` carries the kept inputs within its byte budget, `kitfleet bundle receive` stores them on
the laptop once per item, `kitfleet unsure list` shows them while the kit is away, a label given
then is sent when the kit is back, and a receipt whose unsure image was altered is refused."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from app.fleet.service import Fleet
from resources import datasets_dir
from tests.integration.conftest import AgentFactory
from tests.integration.test_cli_field import _batch_infer, _rows, shapes
from tests.integration.test_cli_jobs import cli, cli_json, deploy
from tests.integration.test_receipts import agent_cli, receive


def _kit_items(fleet: Fleet, kit: Any) -> list[dict[str, Any]]:
    items = asyncio.run(fleet.async_call(kit, lambda c: c.unsure(None)))
    return [i.model_dump() for i in items]


def _received_files(fleet: Fleet) -> list[str]:
    root = fleet.settings.home / "unsure"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_unsure_inputs_travel_by_receipt_and_are_labelled_while_the_kit_is_away(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    agent = start_agent("kit", mdns=False)
    kit = adopt(agent)
    deploy(fleet, kit)
    folder = agent.data_dir / "datasets" / "mixed"
    folder.mkdir(parents=True)
    for image in sorted((datasets_dir() / "digits-eval" / "3").glob("*.png"))[:6]:
        shutil.copy(image, folder / image.name)
    shapes(folder, 6)
    plain = _batch_infer(fleet, kit, {})
    tops = {r["file"]: r["classes"][0]["score"] for r in _rows(agent.data_dir, plain.job_id)}
    band = float(np.median(list(tops.values())))
    kept = _batch_infer(fleet, kit, {"keep_unsure": {"top_below": band}})
    on_kit = _kit_items(fleet, kit)
    assert len(on_kit) == kept.result["unsure_kept"] == sum(t < band for t in tops.values()) >= 3
    oldest = sorted(on_kit, key=lambda i: i["id"])

    stick = tmp_path / "stick"
    stick.mkdir()
    left_out = agent_cli(agent.data_dir, "export", "--out", str(stick), "--no-unsure")
    assert left_out["unsure"] == 0
    budget = oldest[0]["size"] + oldest[1]["size"]  # the two oldest fit, the third does not
    first = agent_cli(agent.data_dir, "export", "--out", str(stick), "--unsure-bytes", str(budget))
    assert first["unsure"] == 2
    assert any(f"{len(on_kit) - 2} more kept input(s) wait for the next receipt" in n for n in first["notes"])
    rest = agent_cli(agent.data_dir, "export", "--out", str(stick))
    assert rest["unsure"] == len(on_kit) - 2, "the ones over the budget came in the next receipt"
    assert agent_cli(agent.data_dir, "export", "--out", str(stick))["unsure"] == 0  # nothing new

    merged = receive(fleet, stick)["received"]
    assert [(r["seq"], r["unsure_new"]) for r in merged] == [
        (1, 0),
        (2, 2),
        (3, len(on_kit) - 2),
        (4, 0),
    ]
    stored = _received_files(fleet)
    assert len(stored) == 2 * len(on_kit)  # image + prediction each
    assert all(name.startswith(f"{kit.device_id}/digits-cnn/") for name in stored)
    again = agent_cli(agent.data_dir, "export", "--out", str(tmp_path), "--since", "0")  # all once more
    assert again["unsure"] == len(on_kit)
    assert [r["unsure_new"] for r in receive(fleet, Path(again["file"]))["received"]] == [0]
    assert [r["already_merged"] for r in receive(fleet, stick)["received"]] == [True] * 4
    assert _received_files(fleet) == stored, "received twice, stored once"

    port = kit.port
    fleet.inventory.update(kit.device_id, port=1)  # the kit is away now
    listed = cli_json(fleet, "unsure", "list", "kit")
    assert [i["from_receipt"] for i in listed] == [True] * len(on_kit)
    assert [{k: v for k, v in i.items() if k in on_kit[0]} for i in listed] == on_kit  # predictions
    for item in listed:  # the images byte for byte
        kit_image = agent.data_dir / "unsure" / "digits-cnn" / Path(item["image"]).name
        assert Path(item["image"]).read_bytes() == kit_image.read_bytes()
        assert Path(item["image"]).read_bytes() == (folder / item["source"]).read_bytes()
    shown = cli(fleet, "unsure", "list", "kit").stdout
    assert "showing what its receipts brought back" in shown
    assert shown.count("(from a receipt)") == len(on_kit)

    target = listed[0]["id"]
    queued = cli_json(fleet, "unsure", "label", "kit", target, "--dataset", "field", "--label", "noise")
    assert queued == {"queued": True, "dataset": "field", "label": "noise"}
    assert "labelled field/noise, queued" in cli(fleet, "unsure", "list", "kit").stdout
    assert not (agent.data_dir / "datasets" / "field").exists(), "nothing reached the kit yet"

    fleet.inventory.update(kit.device_id, port=port)  # back within reach
    back = cli(fleet, "unsure", "list", "kit").stdout
    assert "sent a label queued while away: field/noise/" in back
    assert target not in back, "the kit moved its own copy into the dataset"
    assert cli_json(fleet, "datasets", "classes", "kit", "field")["classes"] == [
        {"label": "noise", "images": 1}
    ]
    assert len(_received_files(fleet)) == 2 * (len(on_kit) - 1), "the laptop's copy went once sent"


def test_a_receipt_whose_unsure_image_was_altered_is_refused(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    agent = start_agent("kit", mdns=False)
    kit = adopt(agent)
    deploy(fleet, kit)
    folder = agent.data_dir / "datasets" / "mixed"
    shapes(folder, 4)
    _batch_infer(fleet, kit, {"keep_unsure": {"top_below": 1.0}})  # every answer below 1: all kept
    stick = tmp_path / "stick"
    stick.mkdir()
    exported = agent_cli(agent.data_dir, "export", "--out", str(stick))
    assert exported["unsure"] == 4
    path = Path(exported["file"])
    original = path.read_bytes()
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if m.name.startswith("files/unsure/digits-cnn/"))
    data = bytearray(original)
    data[member.offset_data + member.size // 2] ^= 0x01  # one bit of one kept image
    path.write_bytes(bytes(data))
    why = _refused(fleet, stick)
    assert f"{member.name!r} does not match its SHA-256 in the manifest" in why

    # the same bit flipped, and the manifest's hash of it rewritten to match: the kit's
    # signature covers the manifest, so the receipt is now not the kit's
    _rewrite(path, original, member.name)
    why = _refused(fleet, stick)
    assert "is not signed by the key pinned for that kit at adoption" in why

    assert not (fleet.settings.home / "unsure").exists(), "nothing of it was stored"
    fleet.inventory.update(kit.device_id, port=1)
    assert cli_json(fleet, "unsure", "list", "kit") == []
    path.write_bytes(original)
    assert [r["unsure_new"] for r in receive(fleet, stick)["received"]] == [4]  # the kit's own: taken


def _refused(fleet: Fleet, stick: Path) -> str:
    done = cli(fleet, "bundle", "receive", str(stick), "--json", ok=False)
    report = json.loads(done.stdout)
    assert report["received"] == []
    [refused] = report["refused"]
    return str(refused["reason"])


def _rewrite(path: Path, original: bytes, name: str) -> None:
    """The receipt with one bit of member `name` flipped and its manifest entry updated."""
    source = io.BytesIO(original)
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=source) as tar,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as new,
    ):
        contents = {m.name: (m, tar.extractfile(m).read()) for m in tar.getmembers()}  # type: ignore[union-attr]
        body = bytearray(contents[name][1])
        body[len(body) // 2] ^= 0x01
        contents[name] = (contents[name][0], bytes(body))
        manifest = json.loads(contents["manifest.json"][1])
        [entry] = [e for e in manifest["members"] if e["path"] == name]
        assert entry["sha256"] != hashlib.sha256(bytes(body)).hexdigest()
        entry["sha256"] = hashlib.sha256(bytes(body)).hexdigest()
        rewritten = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        contents["manifest.json"] = (contents["manifest.json"][0], rewritten)
        for info, data in contents.values():
            info.size = len(data)
            new.addfile(info, io.BytesIO(data))
    path.write_bytes(out.getvalue())
