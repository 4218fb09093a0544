"""Which kits this app installed over SSH, and how to reach them again (for `ssh-logs`).

A small JSON file beside the inventory: it holds no secret (no password, only a key's path).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.toolkit.durable import write_atomic
from app.provision.errors import ProvisionError

RECORDS_FILE = "provisioned.json"


@dataclass(frozen=True)
class Record:
    device_id: str
    target: str  # USER@HOST[:PORT]
    key_file: str | None
    root: str
    data_dir: str
    service: str
    python: str


class Records:
    def __init__(self, home: Path) -> None:
        self.path = home / RECORDS_FILE

    def _all(self) -> dict[str, dict[str, object]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ProvisionError(f"cannot read {self.path}: {exc}; fix or remove it") from exc
        return data if isinstance(data, dict) else {}

    def save(self, record: Record) -> None:
        data = self._all()
        data[record.device_id] = asdict(record)
        write_atomic(self.path, (json.dumps(data, indent=2) + "\n").encode())

    def get(self, device_id: str) -> Record | None:
        entry = self._all().get(device_id)
        return Record(**entry) if isinstance(entry, dict) else None  # type: ignore[arg-type]
