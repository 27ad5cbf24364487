#!/usr/bin/env bash
# Screenshot of the real PhotoSeek window under Xvfb (xcb platform, not offscreen).
#
#   tools/screenshot.sh [OUT.png] [QUERY]       default: docs/screenshot.png, "a cat"
#
# Needs: apt-get install -y xvfb x11-apps imagemagick libxcb-icccm4 libxcb-keysyms1
# and a model package: $PHOTOSEEK_STARTER_DIR, else the starter in the user's library. The photos are the
# real corpus photos from tests/photo_corpus.py, indexed into a throw-away library; the user's settings and
# library are never touched. Only processes this script started are stopped.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$REPO/docs/screenshot.png}")"
QUERY="${2:-a cat}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
SIZE="${SCREEN_SIZE:-1180x760}"
DISPLAY_NUM="${DISPLAY_NUM:-:97}"
WORK="$(mktemp -d /tmp/photoseek-shot.XXXXXX)"
XVFB_PID="" APP_PID=""

cleanup() {
    [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null || true
    [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in Xvfb xwd xwininfo /usr/bin/convert; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y xvfb x11-apps imagemagick" >&2; exit 1; }
done

STARTER="${PHOTOSEEK_STARTER_DIR:-}"
if [ -z "$STARTER" ]; then
    STARTER="$(cd "$REPO" && "$PY" -c 'from core.model_store import ModelStore; from core.paths import library_dir; print(ModelStore(library_dir()).find("starter").dir)')"
fi
mkdir -p "$WORK/library/models" "$WORK/config" "$WORK/data"
ln -s "$(realpath "$STARTER")" "$WORK/library/models/starter"
export XDG_CONFIG_HOME="$WORK/config" XDG_DATA_HOME="$WORK/data"
unset PHOTOSEEK_HOME

echo "indexing the demo photos…"
# Two folders, as a user's library would have: camera photos and scanned documents.
(cd "$REPO" && "$PY" -c "
import sys; from pathlib import Path; from tests.photo_corpus import materialize
root = Path(sys.argv[1]); written = materialize(root / 'Camera', max_side=1024)
(root / 'Scans').mkdir()
for name in ('book_page', 'handwritten_math', 'ancient_coins', 'retina_fundus'):
    written[name].rename(root / 'Scans' / written[name].name)" "$WORK/Pictures")
(cd "$REPO" && "$PY" -m core index "$WORK/Pictures/Camera" "$WORK/Pictures/Scans" --library "$WORK/library" >/dev/null)

Xvfb "$DISPLAY_NUM" -screen 0 "${SIZE}x24" -nolisten tcp >/dev/null 2>&1 &
XVFB_PID=$!
sleep 1
(cd "$REPO" && DISPLAY="$DISPLAY_NUM" QT_QPA_PLATFORM=xcb "$PY" -m desktop --library "$WORK/library" --search "$QUERY") \
    >"$WORK/app.log" 2>&1 &
APP_PID=$!

# Wait for the window, then give thumbnails time to load.
for _ in $(seq 1 60); do
    WID="$(DISPLAY="$DISPLAY_NUM" xwininfo -root -tree 2>/dev/null | awk '/"PhotoSeek": \("/ {print $1; exit}')"
    [ -n "$WID" ] && break
    sleep 0.5
done
[ -n "${WID:-}" ] || { echo "the window never appeared:" >&2; cat "$WORK/app.log" >&2; exit 1; }
sleep "${SETTLE_SECONDS:-6}"

mkdir -p "$(dirname "$OUT")"
DISPLAY="$DISPLAY_NUM" xwd -silent -id "$WID" -out "$WORK/shot.xwd"
/usr/bin/convert "xwd:$WORK/shot.xwd" -strip -quality 95 "$WORK/shot.png"
# Keep the README light: fewer colours when the full PNG is large.
if [ "$(stat -c %s "$WORK/shot.png")" -gt 300000 ]; then
    /usr/bin/convert "$WORK/shot.png" -dither None -colors 192 -strip "PNG8:$OUT"
else
    cp "$WORK/shot.png" "$OUT"
fi
echo "saved $OUT ($(stat -c %s "$OUT") bytes)"
