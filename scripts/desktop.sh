#!/usr/bin/env bash
# The desktop example (examples/desktop, eframe/egui) in a real window under Xvfb:
# its self-test connects to an embedded echo server, sends a message, waits until the echo is
# on screen and saves a PNG of the window; this script checks the run and the PNG (the
# window's size, not blank).
#
#   scripts/desktop.sh [OUT.png]      # default: desktop-screenshot.png in cargo's target dir
#
# Installs Xvfb and Mesa (Debian's xvfb, libgl1-mesa-dri, libegl1, libxkbcommon-x11-0...;
# apt-get as root or through sudo) if they are missing.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. "$ROOT/scripts/lib/target_dir.sh"
OUT="${1:-$TARGET_DIR/desktop-screenshot.png}"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
need=()
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
for pkg in libgl1-mesa-dri libglx-mesa0 libegl1 libegl-mesa0 libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

echo "== building examples/desktop"
nice -n 19 cargo build --quiet -p syncws-desktop
BIN="$TARGET_DIR/debug/syncws-desktop"

# A free display number, and Xvfb on it until this script ends.
DISPLAY_NUM=99
while [ -e "/tmp/.X11-unix/X$DISPLAY_NUM" ] || [ -e "/tmp/.X$DISPLAY_NUM-lock" ]; do
    DISPLAY_NUM=$((DISPLAY_NUM + 1))
done
Xvfb ":$DISPLAY_NUM" -screen 0 1024x768x24 -nolisten tcp >/tmp/xvfb-$$.log 2>&1 &
XVFB_PID=$!
trap 'kill $XVFB_PID 2>/dev/null || true; rm -f /tmp/xvfb-$$.log' EXIT
for _ in $(seq 100); do
    [ -e "/tmp/.X11-unix/X$DISPLAY_NUM" ] && break
    sleep 0.1
done
[ -e "/tmp/.X11-unix/X$DISPLAY_NUM" ] || { echo "desktop.sh: Xvfb did not start"; cat /tmp/xvfb-$$.log; exit 1; }

rm -f "$OUT"
echo "== running the self-test on :$DISPLAY_NUM (Mesa's software OpenGL)"
DISPLAY=":$DISPLAY_NUM" LIBGL_ALWAYS_SOFTWARE=1 WINIT_UNIX_BACKEND=x11 "$BIN" --self-test "$OUT"

# The PNG: the window's size (640×420 logical points at scale 1), and not blank.
python3 - "$OUT" <<'PY'
import struct, sys, zlib
path = sys.argv[1]
data = open(path, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, size = 8, b"", None
while pos < len(data):
    (length,) = struct.unpack(">I", data[pos:pos + 4])
    kind = data[pos + 4:pos + 8]
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        size = struct.unpack(">II", body[:8])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
w, h = size
assert (w, h) == (640, 420), f"expected the 640x420 window, got {w}x{h}"
raw = zlib.decompress(idat)
stride = 1 + w * 4
pixels = set()
for y in range(0, h, 4):
    row = raw[y * stride + 1:(y + 1) * stride]
    for x in range(0, w * 4, 16):
        pixels.add(row[x:x + 3])
# Filtered rows make this approximate; a blank window gives a handful of values.
assert len(pixels) > 20, f"the window looks blank ({len(pixels)} distinct samples)"
print(f"desktop.sh: {path}: {w}x{h}, {len(pixels)} distinct colour samples")
PY
echo "DESKTOP OK"
