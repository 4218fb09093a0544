"""The agent's data dir is its own user's only: nothing the agent keeps is readable by another
local user (the database holds the pairing key and token hashes). Durable writes are the
toolkit's (`agent.toolkit.durable`)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077  # what the agent makes is its own user's only
log = logging.getLogger(__name__)


def private_data_dir(data_dir: Path) -> list[str]:
    """Make the data dir owner-only, or make an existing one so: the dir itself and everything
    directly in it (the database and its -wal/-shm, the key, the model, dataset and job
    folders) lose group and other access. Nothing deeper is walked: a 0700 dir keeps others
    out of all of it. Returns the names whose mode changed."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    entries = sorted(data_dir.iterdir())
    return [path.name for path in (data_dir, *entries) if _owner_only(path)]


def _owner_only(path: Path) -> bool:
    """Drop group and other bits, keeping the owner's; links are left alone (never followed)."""
    info = path.lstat()
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode) or not mode & 0o077:
        return False
    try:
        path.chmod(mode & 0o700)
    except PermissionError:  # another user's file (made by hand as root, say): say so, go on
        log.warning(
            "%s is readable by other users (mode %o) and not the agent's to change: "
            "chown it to the agent's user or chmod go-rwx it",
            path,
            mode,
        )
        return False
    return True
