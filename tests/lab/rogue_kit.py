"""A rogue kit: a small TLS HTTP server on 127.0.0.1 with its own self-signed certificate,
answering the app's calls with whatever a test crafts.

It is put in the app's inventory directly (`adopt_into`), certificate pinned, as if it had been
adopted before: the point is what the app does with a kit's answers once it trusts the kit.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.identity import load_or_create
from agent.wire import (
    API_VERSION,
    JobInfo,
    JobProgress,
    JobRequest,
    format_device_id,
)
from app.fleet.inventory import Inventory, Kit
from app.fleet.localagent import LOOPBACK


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


def json_answer(data: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(data).encode())


def file_answer(data: bytes) -> Answer:
    return Answer(200, data, "application/octet-stream")


NOT_FOUND = json_answer({"error": "not_found", "message": "nothing here", "hint": None}, 404)


def finished_job(job_id: str, label: str = "rogue job") -> dict[str, Any]:
    """A finished benchmark job as the API describes one."""
    now = time.time()
    info = JobInfo(
        job_id=job_id,
        kind="benchmark",
        label=label,
        state="done",
        request=JobRequest(kind="benchmark", params={"model": "digits"}, label=label),
        attempts=1,
        progress=JobProgress(done=1, total=1),
        created_at=now - 5,
        started_at=now - 4,
        finished_at=now - 1,
        updated_at=now - 1,
        result={"rows": []},
    )
    return info.model_dump(mode="json")


def polled_routes(kit: RogueKit, jobs: list[dict[str, Any]]) -> dict[str, Answer]:
    """Answers to what the window reads of a kit every poll, so it shows the kit online: each
    part on its own route, and all of them in one on /v1/overview."""
    metrics = {"device_id": kit.device_id, "interval_s": 10.0, "samples": []}
    facts = {"device_id": kit.device_id, "name": kit.name, "collected_at": time.time(), "families": {}}
    health = json.loads(kit.routes["/v1/health"].body)
    overview = {"health": health, "metrics": metrics, "models": [], "jobs": jobs, "facts": facts, "audit": []}
    return {
        "/v1/overview": json_answer(overview),
        "/v1/metrics": json_answer(metrics),
        "/v1/facts": json_answer(facts),
        "/v1/models": json_answer([]),
        "/v1/jobs": json_answer(jobs),
        "/v1/audit": json_answer([]),
        "/v1/schedules": json_answer([]),
        "/v1/datasets": json_answer([]),
        "/v1/unsure": json_answer([]),  # the Field data tab reads it when the kit is selected
    }


@dataclass
class RogueKit:
    """Serves `routes` (path without query → answer); `fallback` answers any other path."""

    data_dir: Path
    name: str = "rogue"
    routes: dict[str, Answer] = field(default_factory=dict)
    fallback: Answer = NOT_FOUND
    seen: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.identity = load_or_create(self.data_dir)
        self.device_id = self.identity.device_id
        self.cert_pem = self.identity.cert_path.read_text()
        self.routes.setdefault(
            "/v1/health",
            json_answer(
                {"status": "ok", "version": "6.6.6", "api_version": API_VERSION, "device_id": self.device_id}
            ),
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> RogueKit:
        kit = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                path = urlsplit(self.path).path
                kit.seen.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                answer = kit.routes.get(path, kit.fallback)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.identity.cert_path, self.identity.key_path)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="rogue-kit", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> RogueKit:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def adopt_into(self, home: Path) -> Kit:
        """Save this kit in the app's inventory with its certificate pinned, as adoption would."""
        home.mkdir(parents=True, exist_ok=True)
        kit = Kit(
            device_id=self.device_id,
            name=self.name,
            host=LOOPBACK,
            port=self.port,
            cert_pem=self.cert_pem,
            token="rogue-token",
            token_id="t-rogue",
            scope="admin",
            kit_model="Rogue",
            agent_version="6.6.6",
            adopted_at=time.time(),
        )
        inventory = Inventory(home)
        try:
            inventory.save(kit)
        finally:
            inventory.close()
        return kit

    @property
    def display_id(self) -> str:
        return format_device_id(self.device_id)
