"""Write packaging/constraints/kit-py3XX.txt: the versions a kit on that Python runs, as tested.

    VENV/bin/python -m pip freeze > /tmp/tested.txt      # a venv where the agent's tests passed
    python packaging/constraints/pin.py --python 3.10 --tested /tmp/tested.txt

The agent's dependencies (pyproject's [agent] extra, plus pip) are resolved for that Python on
both kit architectures with the tested versions as constraints, so the file names exactly the
closure a kit installs. The wheelhouse resolves against it; the .deb and provisioning install
from that wheelhouse, so a fleet runs the versions that were tested.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ARCHES = ("x86_64", "aarch64")


def compile_for(python: str, arch: str, tested: Path, glibc: str) -> set[str]:
    with tempfile.TemporaryDirectory() as tmp:
        wanted = Path(tmp) / "requirements.in"
        wanted.write_text("pip\n")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "uv",
                "pip",
                "compile",
                "--quiet",
                "--no-config",
                "--no-header",
                "--no-annotate",
                "--only-binary",
                ":all:",
                "--python-version",
                python,
                "--python-platform",
                f"{arch}-manylinux_{glibc.replace('.', '_')}",
                "--extra",
                "agent",
                "--constraint",
                str(tested),
                str(REPO / "pyproject.toml"),
                str(wanted),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    return {line.strip() for line in done.stdout.splitlines() if "==" in line}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the kits' CPython X.Y")
    parser.add_argument("--tested", type=Path, required=True, help="`pip freeze` of the tested venv")
    parser.add_argument("--glibc", default="2.28")
    args = parser.parse_args(argv)
    pins = set().union(*(compile_for(args.python, arch, args.tested, args.glibc) for arch in ARCHES))
    pins = {p for p in pins if not p.startswith("kitfleet==")}
    out = HERE / f"kit-py{args.python.replace('.', '')}.txt"
    out.write_text(
        f"# Tested versions for kits on CPython {args.python} (x86_64 and aarch64), written by\n"
        f"# packaging/constraints/pin.py from a venv where the agent's tests passed. Used as\n"
        "# constraints by packaging/wheelhouse.py; the .deb and provisioning install from that.\n"
        + "".join(f"{pin}\n" for pin in sorted(pins, key=str.lower))
    )
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
