"""Resumable model uploads (offset-based, like tus), verified before install.

A client creates an upload with the manifest, sends bytes with PATCH at the
offset the agent reports, and commits. The data lands in a temp file under
`models/.uploads/` (same filesystem as the store, so install is a rename);
the serving version is untouched until a verified file is installed.

The file's sha256 is worked out as its bytes are written (`upload_file.RunningSum`), so the commit need not
read 100 MB again; the commit reads it again whenever that sum does not cover exactly the
bytes on disk (the agent restarted mid-upload, a write failed). A checker process is started
while the bytes arrive (`verifier.Verifier`) and is ready, ONNX Runtime imported, at commit.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

from agent.db import Database
from agent.errors import Conflict, Invalid, NoRoom, NotFound, TooLarge
from agent.models.gates import check_gates
from agent.models.store import ModelStore
from agent.models.upload_file import RunningSum, append, size_of, too_long
from agent.models.verifier import VerificationFailed, Verifier, stages
from agent.wire import Manifest, ModelInfo, UploadRequest, UploadStatus

STALE_AFTER_S = 7 * 86400  # a half-sent model is kept a week for the link to come back
CHECKER_IDLE_S = 300.0  # a checker kept ready that no commit took (the laptop left) is let go
log = logging.getLogger(__name__)


class Uploads:
    def __init__(self, db: Database, store: ModelStore, max_bytes: int, reserve_bytes: int) -> None:
        self._db = db
        self._reserve = reserve_bytes  # never fill the kit's disk to the last byte
        self._store = store
        self._max_bytes = max_bytes
        self.root = store.root / ".uploads"
        self.root.mkdir(parents=True, exist_ok=True)
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._sums: dict[str, RunningSum] = {}  # upload id -> sha256 of the bytes written so far
        self._verifier = Verifier()
        self.recover()

    def close(self) -> None:
        """Let a checker process kept ready go (the agent stops)."""
        self._verifier.close()

    def recover(self) -> None:
        """After a restart: re-open interrupted verifications, expire stale uploads, drop orphans."""
        now = time.time()
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE uploads SET state = 'receiving', updated_at = ? WHERE state = 'verifying'", (now,)
            )
            conn.execute(
                "UPDATE uploads SET state = 'failed', error = 'expired' "
                "WHERE state = 'receiving' AND updated_at < ?",
                (now - STALE_AFTER_S,),
            )
            live = set()
            for row in conn.execute("SELECT * FROM uploads WHERE state = 'receiving'").fetchall():
                if self._store.has(row["name"], row["version"]):
                    # killed between the install's rename and marking the upload installed
                    conn.execute(
                        "UPDATE uploads SET state = 'installed', updated_at = ? WHERE id = ?",
                        (now, row["id"]),
                    )
                    continue
                live.add(row["id"])
                # killed mid-install: the verified file was moved into a staging folder the
                # store has just removed; the upload starts again from byte 0
                self._data(row["id"]).touch()
        for path in self.root.iterdir():
            if path.stem not in live:
                path.unlink(missing_ok=True)

    def create(self, request: UploadRequest) -> UploadStatus:
        manifest = request.manifest
        if manifest.size_bytes > self._max_bytes:
            raise TooLarge(
                "model_too_large",
                f"the model has {manifest.size_bytes} bytes; this kit accepts at most {self._max_bytes}",
                "raise max_model_bytes in agent.json",
            )
        if self._store.has(manifest.name, manifest.version):
            return self._already_installed(manifest)
        # The kit checks the gates itself, with facts read now: the app's copy may be old.
        overridden = check_gates(manifest, self._store.root, request.force)
        return self._start(request).model_copy(update={"gates_overridden": overridden})

    def _start(self, request: UploadRequest) -> UploadStatus:
        manifest = request.manifest
        with self._db.transaction() as conn:
            for row in conn.execute(
                "SELECT * FROM uploads WHERE name = ? AND version = ? AND state = 'receiving'",
                (manifest.name, manifest.version),
            ):
                if row["sha256"] == manifest.sha256:
                    return self._status(row)  # the same upload again: resume it
                self._fail(conn, row["id"], "replaced by a newer upload of the same version")
            self._check_space(manifest.size_bytes)
            upload_id = secrets.token_hex(12)
            now = time.time()
            conn.execute(
                "INSERT INTO uploads (id, name, version, sha256, manifest, activate, size, state, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'receiving', ?, ?)",
                (
                    upload_id,
                    manifest.name,
                    manifest.version,
                    manifest.sha256,
                    manifest.model_dump_json(),
                    int(request.activate),
                    manifest.size_bytes,
                    now,
                    now,
                ),
            )
            self._data(upload_id).touch()
            return self._status(conn.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone())

    def status(self, upload_id: str) -> UploadStatus:
        return self._status(self._row(upload_id))

    async def append(
        self, upload_id: str, offset: int, body: AsyncIterator[bytes], declared: int | None = None
    ) -> UploadStatus:
        """Write the bytes that start at `offset`; the offset must be where the file ends.
        A chunk `declared` (Content-Length) past the model's size is refused before it is read."""
        row = self._row(upload_id)
        if row["state"] != "receiving":
            raise Conflict("upload_not_receiving", f"the upload is {row['state']}")
        with self._claim(upload_id):
            path = self._data(upload_id)
            current = path.stat().st_size
            if offset != current:
                raise Conflict(
                    "offset_mismatch",
                    f"the upload is at byte {current}, not {offset}",
                    f"resume with Upload-Offset: {current}",
                    resume_at=current,
                )
            if declared is not None and current + declared > row["size"]:
                raise too_long(row["size"], current, declared)
            await asyncio.to_thread(self._verifier.prepare)  # it imports while the bytes arrive
            running = self._running(upload_id, current)
            try:
                await append(path, current, row["size"], body, running)
            finally:
                if running is not None and running.offset != size_of(path):  # a write failed
                    self._sums.pop(upload_id, None)
        self._touch(upload_id)
        status = self.status(upload_id)
        if status.offset < status.size:  # the link dropped: no checker idles until it comes back
            await asyncio.to_thread(self._let_checker_go)
        else:
            asyncio.get_running_loop().call_later(CHECKER_IDLE_S, self._let_checker_go_later)
        return status

    async def commit(self, upload_id: str) -> ModelInfo:
        """Verify the complete file and install it; the serving version changes only if asked."""
        row = self._row(upload_id)
        if row["state"] == "installed":
            return self._store.info(row["name"])
        path = self._data(upload_id)
        with self._claim(upload_id):
            received = path.stat().st_size if path.exists() else 0
            if row["state"] != "receiving" or received != row["size"]:
                raise Conflict(
                    "upload_incomplete",
                    f"the upload has {received} of {row['size']} bytes ({row['state']})",
                    "send the remaining bytes with PATCH, then commit",
                )
            self._set_state(upload_id, "verifying")
            manifest = Manifest.model_validate_json(row["manifest"])
            running = self._sums.pop(upload_id, None)
            digest = running.hexdigest() if running and running.offset == received else None
            try:
                times = await asyncio.to_thread(self._verifier.verify, path, manifest, digest)
            except VerificationFailed as exc:
                self._fail_now(upload_id, str(exc))
                raise Invalid(
                    "verification_failed",
                    f"the model was refused: {exc}",
                    "the serving version is unchanged; fix the model or manifest",
                ) from None
            started = time.perf_counter()
            await asyncio.to_thread(self._store.install, manifest, path)
            self._set_state(upload_id, "installed")
            times["install"] = time.perf_counter() - started
            log.info("%s %s installed; %s", manifest.name, manifest.version, stages(times, digest))
        if row["activate"]:
            return self._store.activate(manifest.name, manifest.version)
        return self._store.info(manifest.name)

    def abort(self, upload_id: str) -> None:
        row = self._row(upload_id)
        if row["state"] in ("receiving", "failed"):
            self._fail_now(upload_id, "aborted by the client")

    # internals ----------------------------------------------------------------

    def _check_space(self, size: int) -> None:
        free = shutil.disk_usage(self.root).free
        if free - size < self._reserve:
            raise NoRoom(
                "insufficient_storage",
                f"the kit has {free >> 20} MiB free; this model needs {size >> 20} MiB "
                f"plus {self._reserve >> 20} MiB in reserve",
                "delete old model versions",
            )

    def _already_installed(self, manifest: Manifest) -> UploadStatus:
        installed = self._store.manifest(manifest.name, manifest.version)
        if installed.sha256 != manifest.sha256:
            raise Conflict(
                "version_exists",
                f"{manifest.name} {manifest.version} is installed with other content",
                "give the new model another version",
            )
        return UploadStatus(
            upload_id="",
            name=manifest.name,
            version=manifest.version,
            offset=manifest.size_bytes,
            size=manifest.size_bytes,
            state="installed",
        )

    def _running(self, upload_id: str, current: int) -> RunningSum | None:
        """The running sum of this upload's bytes if it covers exactly the `current` on disk, a
        new one at byte 0, else None: the commit reads the file again (after a restart nothing
        is known of the bytes on disk; hashlib cannot save a sum's state to resume it)."""
        running = self._sums.get(upload_id)
        if running is not None and running.offset == current:
            return running
        self._sums.pop(upload_id, None)
        if current != 0:
            return None
        running = self._sums[upload_id] = RunningSum()
        return running

    def _let_checker_go(self) -> None:
        """Let the checker kept ready go unless a request is writing or committing an upload
        (one that arrives later starts another)."""
        if not self._busy:
            self._verifier.release()

    def _let_checker_go_later(self) -> None:
        asyncio.get_running_loop().run_in_executor(None, self._let_checker_go)

    def _claim(self, upload_id: str) -> _Claim:
        return _Claim(self, upload_id)

    def _data(self, upload_id: str) -> Path:
        return self.root / f"{upload_id}.part"

    def _row(self, upload_id: str) -> sqlite3.Row:
        rows = self._db.query("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        if not rows:
            raise NotFound(
                "upload_not_found",
                f"no upload with id {upload_id!r}",
                "run the same `kitfleet deploy` again: it starts a new upload",
            )
        return rows[0]

    def _status(self, row: sqlite3.Row) -> UploadStatus:
        path = self._data(row["id"])
        offset = path.stat().st_size if path.exists() else 0
        return UploadStatus(
            upload_id=row["id"],
            name=row["name"],
            version=row["version"],
            offset=offset,
            size=row["size"],
            state=row["state"],
            error=row["error"],
        )

    def _touch(self, upload_id: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE uploads SET updated_at = ? WHERE id = ?", (time.time(), upload_id))

    def _set_state(self, upload_id: str, state: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE uploads SET state = ?, updated_at = ? WHERE id = ?", (state, time.time(), upload_id)
            )

    def _fail_now(self, upload_id: str, error: str) -> None:
        with self._db.transaction() as conn:
            self._fail(conn, upload_id, error)

    def _fail(self, conn: sqlite3.Connection, upload_id: str, error: str) -> None:
        conn.execute(
            "UPDATE uploads SET state = 'failed', error = ?, updated_at = ? WHERE id = ?",
            (error, time.time(), upload_id),
        )
        self._sums.pop(upload_id, None)
        self._data(upload_id).unlink(missing_ok=True)


class _Claim:
    """One request at a time per upload: a second writer gets 409, not interleaved bytes."""

    def __init__(self, uploads: Uploads, upload_id: str) -> None:
        self._uploads, self._id = uploads, upload_id

    def __enter__(self) -> None:
        with self._uploads._busy_lock:
            if self._id in self._uploads._busy:
                raise Conflict(
                    "upload_busy",
                    "another request is writing this upload",
                    "wait for it to finish, then ask for the offset",
                )
            self._uploads._busy.add(self._id)

    def __exit__(self, *_: object) -> None:
        with self._uploads._busy_lock:
            self._uploads._busy.discard(self._id)
