#!/bin/sh
# Open the app bundle's window on a virtual X server (the xcb platform plugin, as on a laptop),
# through `kitfleet demo --screenshot`: local agents started from the bundle (`kitfleet -m agent`),
# discovered, adopted, deployed to and shown; once the window has been grabbed it is closed.
#     apt install xvfb xauth && sh packaging/pyinstaller/check_window.sh dist/kitfleet
set -eu
BUNDLE=${1:-dist/kitfleet}
OUT=${2:-$(mktemp -d)}
mkdir -p "$OUT"
[ -x "$BUNDLE/kitfleet" ] || { echo "no bundle at $BUNDLE: pyinstaller --noconfirm packaging/pyinstaller/kitfleet.spec" >&2; exit 1; }
command -v xvfb-run >/dev/null || { echo "needs xvfb-run: apt install xvfb xauth" >&2; exit 1; }
export KITFLEET_HOME="$OUT/home" QT_QPA_PLATFORM=xcb BUNDLE OUT
rm -f "$OUT/window.png"
# On a display the demo keeps its window open for a person: end it once the screenshot is saved.
xvfb-run -a -s "-screen 0 1366x768x24" sh -c '
    setsid "$BUNDLE/kitfleet" demo --screenshot "$OUT/window.png" &
    demo=$!  # leads its own process group: its local agents go with it
    waited=0
    while [ ! -s "$OUT/window.png" ] && kill -0 "$demo" 2>/dev/null && [ "$waited" -lt 600 ]; do
        sleep 2; waited=$((waited + 2))
    done
    sleep 2
    env kill -TERM -- "-$demo" 2>/dev/null || true  # the external kill: the builtin takes no group
    sleep 5  # the window may not wake for SIGTERM: then the whole group goes
    env kill -KILL -- "-$demo" 2>/dev/null || true
    wait "$demo" || true
'
[ -s "$OUT/window.png" ] || { echo "the bundle drew no window" >&2; exit 1; }
echo "the bundle's window opened on Xvfb: $OUT/window.png"
