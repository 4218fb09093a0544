#!/bin/sh
# Open the app bundle's window on a virtual X server (the xcb platform plugin, as on a laptop),
# through `kitfleet demo --screenshot`: local agents started from the bundle (`kitfleet -m agent`),
# discovered, adopted and shown; the window is grabbed once it has drawn, then the demo ends.
#     apt install xvfb xauth && sh packaging/pyinstaller/check_window.sh dist/kitfleet
set -eu
BUNDLE=${1:-dist/kitfleet}
OUT=${2:-$(mktemp -d)}
[ -x "$BUNDLE/kitfleet" ] || { echo "no bundle at $BUNDLE: pyinstaller --noconfirm packaging/pyinstaller/kitfleet.spec" >&2; exit 1; }
command -v xvfb-run >/dev/null || { echo "needs xvfb-run: apt install xvfb xauth" >&2; exit 1; }
unset QT_QPA_PLATFORM
export KITFLEET_HOME="$OUT/home"
xvfb-run -a -s "-screen 0 1366x768x24" env QT_QPA_PLATFORM=xcb \
    timeout 600 "$BUNDLE/kitfleet" demo --screenshot "$OUT/window.png"
[ -s "$OUT/window.png" ] || { echo "the bundle drew no window" >&2; exit 1; }
echo "the bundle's window opened on Xvfb: $OUT/window.png"
