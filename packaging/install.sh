#!/bin/sh
# Install the kitfleet agent on this kit from this stick, with no network.
#
#   sudo sh /media/stick/install.sh                 # pick this kit's arch and Python, start the service
#   sh install.sh --no-systemd --prefix ~/kitfleet --data-dir ~/kitfleet/data   # no root, no service
#
# Picks the wheels for this kit's architecture and newest python3.10-3.13 (or --python PATH),
# makes a new venv under PREFIX/venvs (pip runs from the stick's own wheel: the kit needs neither
# pip nor ensurepip), installs with --no-index and every wheel's sha256 checked, switches
# PREFIX/current to it, installs and starts the systemd unit, and prints the pairing code.
# The layout on the kit is the one `kitfleet provision` makes, so either can upgrade the other.
set -eu

STICK=$(cd "$(dirname "$0")" && pwd)
PREFIX=/opt/kitfleet-agent
DATA_DIR=/var/lib/kitfleet-agent
SERVICE_USER=kitfleet-agent
UNIT=kitfleet-agent.service
PYTHON=
SYSTEMD=yes

usage() {
    cat <<EOF
usage: sh install.sh [--python PATH] [--prefix DIR] [--data-dir DIR] [--no-systemd]
  --python PATH   the kit's CPython 3.10-3.13 (default: the newest the stick has wheels for)
  --prefix DIR    where the agent's venvs go (default $PREFIX)
  --data-dir DIR  the agent's identity, models and jobs (default $DATA_DIR)
  --no-systemd    install only; no service user, no unit, no root needed
EOF
}

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --python) [ $# -ge 2 ] || fail "--python needs a path"; PYTHON=$2; shift 2 ;;
        --prefix) [ $# -ge 2 ] || fail "--prefix needs a folder"; PREFIX=$2; shift 2 ;;
        --data-dir) [ $# -ge 2 ] || fail "--data-dir needs a folder"; DATA_DIR=$2; shift 2 ;;
        --no-systemd) SYSTEMD=no; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; fail "unknown option $1" ;;
    esac
done

case $(uname -m) in
    x86_64 | amd64) ARCH=x86_64 ;;
    aarch64 | arm64) ARCH=aarch64 ;;
    *) fail "this kit is $(uname -m); the stick has wheels for x86_64 and aarch64 kits only" ;;
esac
HAVE=$(ls "$STICK/targets" 2>/dev/null | tr '\n' ' ')
[ -n "$HAVE" ] || fail "$STICK is not a kitfleet stick (no targets/); make one with: python packaging/wheelhouse.py --out STICK"

cp_tag() { "$1" -c 'import sys; print("cp%d%d" % sys.version_info[:2])' 2>/dev/null; }

if [ -n "$PYTHON" ]; then
    CP=$(cp_tag "$PYTHON") || fail "$PYTHON does not run; pass --python with a CPython 3.10-3.13"
else
    for candidate in python3.13 python3.12 python3.11 python3.10 python3; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        CP=$(cp_tag "$candidate") || continue
        if [ -d "$STICK/targets/$ARCH-$CP" ]; then
            PYTHON=$(command -v "$candidate")
            break
        fi
    done
    [ -n "$PYTHON" ] || fail "no python3.10-3.13 on this kit matches the stick (it has: $HAVE); install one (apt install python3) or pass --python PATH"
fi
TARGET=$ARCH-$CP
[ -d "$STICK/targets/$TARGET" ] || fail "the stick has no wheels for $TARGET (it has: $HAVE); add them with: python packaging/wheelhouse.py --arch $ARCH --python X.Y --out STICK"

manifest() { "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$STICK/manifest.json" "$1"; }
VERSION=$(manifest version)
GLIBC=$(manifest glibc)
"$PYTHON" - "$GLIBC" <<'EOF' || fail "this kit's glibc is older than $GLIBC, the oldest the stick's wheels run on; use a newer OS image"
import platform, sys
have = platform.libc_ver()[1] or "0"
sys.exit(0 if tuple(map(int, have.split("."))) >= tuple(map(int, sys.argv[1].split("."))) else 1)
EOF
if [ "$SYSTEMD" = yes ] && [ "$(id -u)" != 0 ]; then
    fail "installing the service needs root: run sudo sh $0, or pass --no-systemd --prefix DIR --data-dir DIR"
fi

# The kit's own pip settings (an index, find-links, constraints) must not change what installs.
for var in $(env | sed -n 's/^\(PIP_[A-Z_]*\)=.*/\1/p'); do unset "$var"; done
export PIP_CONFIG_FILE=/dev/null
PIP_WHEEL=$(ls "$STICK"/pip-*.whl 2>/dev/null | head -n 1)
[ -n "$PIP_WHEEL" ] || fail "the stick has no pip wheel; rebuild it with packaging/wheelhouse.py"
VENV=$PREFIX/venvs/kitfleet-$VERSION-$CP-$(date +%Y%m%d%H%M%S)
echo "kitfleet-agent $VERSION for $TARGET ($PYTHON) into $VENV"
mkdir -p "$PREFIX/venvs"
"$PYTHON" -m venv --without-pip "$VENV" || fail "$PYTHON -m venv failed; install the venv module (apt install python3-venv)"
if ! "$VENV/bin/python" "$PIP_WHEEL/pip" install --quiet --no-index --find-links "$STICK" \
    --require-hashes --no-cache-dir --disable-pip-version-check --no-input --no-warn-script-location \
    -r "$STICK/targets/$TARGET/requirements.txt"; then
    rm -rf "$VENV"
    fail "the offline install failed (above); the stick may be damaged: check it with cd STICK && sha256sum -c SHA256SUMS"
fi
SAID=$("$VENV/bin/kitfleet-agent" --version) || { rm -rf "$VENV"; fail "the new agent does not start"; }
ln -sfn "venvs/$(basename "$VENV")" "$PREFIX/current.new"
mv -Tf "$PREFIX/current.new" "$PREFIX/current" 2>/dev/null || { rm -f "$PREFIX/current"; mv "$PREFIX/current.new" "$PREFIX/current"; }
AGENT=$PREFIX/current/bin/kitfleet-agent
echo "$SAID installed: $AGENT"

as_agent() { "$@"; }
mkdir -p "$DATA_DIR"
chmod 0700 "$DATA_DIR"
if [ "$SYSTEMD" = yes ]; then
    id -u "$SERVICE_USER" >/dev/null 2>&1 ||
        useradd --system --home-dir "$DATA_DIR" --shell /usr/sbin/nologin "$SERVICE_USER"
    chown -R "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR"
    for unit in "$UNIT" kitfleet-agent-upgrade.service kitfleet-agent-upgrade.path; do
        sed -e "s|@AGENT@|$AGENT|g" -e "s|@PREFIX@|$PREFIX|g" -e "s|@DATA_DIR@|$DATA_DIR|g" \
            "$STICK/$unit.in" >"/etc/systemd/system/$unit"
    done
    # the one grant beyond the data dir: asking timedated to set the clock (kitfleet set-clock)
    mkdir -p /etc/polkit-1/rules.d
    cp "$STICK/50-kitfleet-clock.rules" /etc/polkit-1/rules.d/
    systemctl daemon-reload
    systemctl enable "$UNIT" kitfleet-agent-upgrade.path >/dev/null 2>&1
    systemctl start kitfleet-agent-upgrade.path >/dev/null 2>&1 || true
    systemctl restart "$UNIT"
    as_agent() { runuser -u "$SERVICE_USER" -- "$@"; }
fi
as_agent "$AGENT" pair-code --data-dir "$DATA_DIR"
