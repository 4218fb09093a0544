"""Dataset archives unpack the same on a Python whose tarfile has no extraction filters.

Debian 12's Python 3.11.2 (and 3.10.0-3.10.11, 3.11.0-3.11.3) lacks `tarfile.data_filter`, so
`extractall(..., filter="data")` raises TypeError there. `agent/jobs/archives.py` never asks
tarfile to extract: it reads members as a stream and writes plain files itself. These tests run
it in a child interpreter whose tarfile is made to look like 3.11.2's (no filters, extraction
refusing `filter=`, and any extraction call failing loudly), with the hostile archives a kit
sees, so a later switch to tarfile's own extraction would fail here before it failed on a kit.
"""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

# Run in the child before the agent is imported: tarfile as Debian 12's 3.11.2 ships it.
_OLD_TARFILE = textwrap.dedent(
    """
    import tarfile
    for name in ("data_filter", "tar_filter", "fully_trusted_filter", "FilterError"):
        if hasattr(tarfile, name):
            delattr(tarfile, name)
    if hasattr(tarfile.TarFile, "extraction_filter"):
        del tarfile.TarFile.extraction_filter
    def _no_extraction(self, *args, **kwargs):
        if "filter" in kwargs:
            raise TypeError("extractall() got an unexpected keyword argument 'filter'")
        raise AssertionError("the agent must not use tarfile's extraction")
    tarfile.TarFile.extractall = _no_extraction
    tarfile.TarFile.extract = _no_extraction
    """
)
_RUN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from agent.errors import Refusal
    from agent.jobs.archives import survey, unpack
    archive, folder = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        unpack(archive, folder, survey(archive, 1 << 20, 100))
    except Refusal as exc:
        print(json.dumps({"refused": exc.error, "message": exc.message}))
    else:
        print(json.dumps({"refused": None}))
    """
)


def _run_old_tarfile(archive: Path, folder: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _OLD_TARFILE + _RUN, str(archive), str(folder)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


def test_the_old_tarfile_really_lacks_the_filters(tmp_path: Path) -> None:
    """The simulation holds: what breaks on 3.11.2 breaks in the child too."""
    probe = "import tarfile; t = tarfile.open(fileobj=__import__('io').BytesIO(b'\\0' * 1024))\n"
    probe += "print(hasattr(tarfile, 'data_filter')); t.extractall('.', filter='data')"
    done = subprocess.run(
        [sys.executable, "-c", _OLD_TARFILE + probe], capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == "False"
    assert "TypeError" in done.stderr


def test_a_plain_dataset_unpacks_without_tarfile_filters(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "ok.tar.gz",
        [
            (_member("cats", tarfile.DIRTYPE, mode=0o755), b""),
            (_member("cats/a.png"), b"png-a"),
            (_member("dogs/b.png", mode=0o4755), b"png-b"),  # setuid asked for, never given
        ],
    )
    folder = tmp_path / "out"
    folder.mkdir()
    assert _run_old_tarfile(archive, folder) == {"refused": None}
    assert (folder / "cats" / "a.png").read_bytes() == b"png-a"
    written = (folder / "dogs" / "b.png").stat().st_mode
    assert not written & (stat.S_ISUID | stat.S_ISGID | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("name", "member"),
    [
        ("symlink out", _member("cats/evil", tarfile.SYMTYPE, link="../../../etc/passwd")),
        ("symlink absolute", _member("evil", tarfile.SYMTYPE, link="/etc/shadow")),
        ("hard link out", _member("evil", tarfile.LNKTYPE, link="/etc/passwd")),
        ("absolute path", _member("/tmp/kitfleet-escaped.png")),
        ("climbing path", _member("cats/../../escaped.png")),
        ("character device", _member("dev/zero", tarfile.CHRTYPE)),
        ("block device", _member("dev/sda", tarfile.BLKTYPE)),
        ("fifo", _member("pipe", tarfile.FIFOTYPE)),
    ],
)
def test_hostile_members_are_refused_without_tarfile_filters(
    tmp_path: Path, name: str, member: tarfile.TarInfo
) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", [(_member("cats/a.png"), b"png"), (member, b"x")])
    folder = tmp_path / "deep" / "out"
    folder.mkdir(parents=True)
    answer = _run_old_tarfile(archive, folder)
    assert answer["refused"] == "bad_archive", name
    assert "not a plain file or folder" in str(answer["message"])
    assert not list(folder.iterdir())  # refused while measuring: nothing was written
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["bad.tar.gz", "deep", "out"]


def test_an_archive_larger_than_it_said_is_refused_without_tarfile_filters(tmp_path: Path) -> None:
    big = _member("cats/big.png")
    archive = _tar(tmp_path / "big.tar.gz", [(big, b"\0" * ((1 << 20) + 1))])
    folder = tmp_path / "out"
    folder.mkdir()
    answer = _run_old_tarfile(archive, folder)
    assert answer["refused"] == "dataset_too_large"
    assert not list(folder.iterdir())
