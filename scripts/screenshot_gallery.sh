#!/usr/bin/env bash
# Screenshot the gallery page in headless Chromium, to look at the typeset formulas and drawings.
#
#   bash scripts/screenshot_gallery.sh [OUT] [EXAMPLE] [HEIGHT]
#
# OUT      a gallery folder written by `symgrad gallery --out OUT` (default _out/gallery; run first if missing)
# EXAMPLE  one example only ("07", "07_optimizers" or "optimizers"): its section alone is put on a page
#          of its own (OUT/_page_EXAMPLE.html) and shot; without it the whole index.html
# HEIGHT   window height in pixels (default 3000; the width is 1200)
#
# Writes OUT/screenshot.png or OUT/screenshot_EXAMPLE.png and prints its path. Needs chromium (or
# chromium-browser / google-chrome) on PATH; nothing is fetched from the network.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-_out/gallery}
EXAMPLE=${2:-}
HEIGHT=${3:-3000}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
BROWSER=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$BROWSER" ]; then
    echo "no chromium, chromium-browser or google-chrome on PATH" >&2
    exit 2
fi
if [ ! -f "$OUT/index.html" ]; then
    "$PY" -m symgrad gallery --out "$OUT" --smoke
fi
if [ -n "$EXAMPLE" ]; then
    PAGE="_page_${EXAMPLE}.html"
    SHOT="$OUT/screenshot_${EXAMPLE}.png"
    "$PY" -c 'import sys; from symgrad import showcase
showcase.write_index(sys.argv[1], showcase.collected(sys.argv[1], sys.argv[2]), filename=sys.argv[3])' \
        "$OUT" "$EXAMPLE" "$PAGE"
else
    PAGE=index.html
    SHOT="$OUT/screenshot.png"
fi
URL="file://$(cd "$OUT" && pwd)/$PAGE"
"$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$SHOT" \
    --window-size="1200,$HEIGHT" "$URL" >/dev/null 2>&1
echo "$SHOT"
