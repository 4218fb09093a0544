"""SFTP push of a ~200 MB wheelhouse to a loopback sshd: kitfleet's tuned paramiko vs OpenSSH `scp`.

Goal (issue 5): >= 0.8x of scp's throughput (paramiko's defaults reach about 0.25x). Both copy
the same random files, of wheel-like sizes, in the same run, alternating, into fresh folders.
kitfleet's session is open before its clock starts, so scp is timed three ways
(scp_variants.py): paying its SSH connect, over a kept-open connection (ControlMaster), and
that with AES-GCM; the goal is against the reused connection (issue 19).
Also shown: paramiko with its defaults (`SFTPClient.put`), to see what the tuning buys.
Run: .venv/bin/python -m benchmarks.sftp [--mb 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import paramiko

from app.provision.knownhosts import KnownHosts
from app.provision.session import SshSession
from app.provision.target import Login, SshTarget
from app.provision.transfer import push
from benchmarks.scp_variants import REUSED, VARIANTS, ScpVariants
from tests.sshd import Sshd


def make_wheelhouse(folder: Path, mb: int, seed: int = 5) -> list[Path]:
    """A few big wheels (onnxruntime, numpy-like), some middling, many small pure ones."""
    rng = random.Random(seed)
    sizes = [28 << 20, 17 << 20, 12 << 20, 9 << 20, 6 << 20]
    while sum(sizes) < mb << 20:
        sizes.append(
            rng.choice(
                [
                    rng.randint(1 << 20, 4 << 20),
                    rng.randint(20 << 10, 600 << 10),
                    rng.randint(20 << 10, 600 << 10),
                ]
            )
        )
    folder.mkdir(parents=True)
    files = []
    for index, size in enumerate(sizes):
        path = folder / f"package{index:03d}-1.0-py3-none-any.whl"
        path.write_bytes(os.urandom(size))
        files.append(path)
    return files


def tuned(session: SshSession, files: list[Path], dest: Path) -> float:
    dest.mkdir()
    started = time.perf_counter()
    push(session, [(f, str(dest / f.name)) for f in files])
    return time.perf_counter() - started


def defaults(sshd: Sshd, files: list[Path], dest: Path) -> float:
    dest.mkdir()
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # a throwaway loopback sshd
    client.connect(
        "127.0.0.1",
        sshd.port,
        sshd.user,
        key_filename=str(sshd.client_key),
        allow_agent=False,
        look_for_keys=False,
    )
    try:
        sftp = client.open_sftp()
        started = time.perf_counter()
        for f in files:
            sftp.put(str(f), str(dest / f.name))
        return time.perf_counter() - started
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-defaults", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_wheelhouse(root / "src", args.mb)
        total = sum(f.stat().st_size for f in files)
        sshd = Sshd(root / "sshd").start()
        session = SshSession.connect(
            SshTarget(sshd.user, "127.0.0.1", sshd.port),
            Login(key_file=sshd.client_key, accept_new_host_key=True),
            KnownHosts(root),
        )
        try:
            cipher = getattr(session.transport, "remote_cipher", "?")
            print(f"{len(files)} files, {total / 1e6:.0f} MB, cipher {cipher}, 3 SFTP channels")
            times: dict[str, list[float]] = {name: [] for name in (*VARIANTS, "kitfleet", "defaults")}
            with ScpVariants(sshd, root) as variants:
                for run in range(args.runs):
                    for index, variant in enumerate(VARIANTS):
                        dest = root / f"scp{index}-{run}"
                        dest.mkdir()
                        times[variant].append(variants.copy(variant, files, f"{dest}/"))
                        shutil.rmtree(dest)
                    times["kitfleet"].append(tuned(session, files, root / f"kf{run}"))
                    if not args.skip_defaults and run == 0:
                        times["defaults"].append(defaults(sshd, files, root / f"df{run}"))
                    for name in ("kf", "df"):
                        subprocess.run(["rm", "-rf", str(root / f"{name}{run}")], check=True)
        finally:
            session.close()
            sshd.stop()
    rates = {k: total / statistics.median(v) / 1e6 for k, v in times.items() if v}
    for name, rate in rates.items():
        print(f"{name:<24} {rate:7.1f} MB/s  (median of {len(times[name])})")
    for variant in VARIANTS:
        print(f"kitfleet / {variant:<22} = {rates['kitfleet'] / rates[variant]:.2f}x")
    ratio = rates["kitfleet"] / rates[REUSED]
    print(f"goal: kitfleet >= 0.80x {REUSED}: {ratio:.2f}x, {'met' if ratio >= 0.8 else 'NOT met'}")
    if "defaults" in rates:
        print(f"paramiko defaults / {REUSED} = {rates['defaults'] / rates[REUSED]:.2f}x")


if __name__ == "__main__":
    main()
