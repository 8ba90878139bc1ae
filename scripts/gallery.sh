#!/usr/bin/env bash
# Creates .venv from nothing but Python, installs symgrad with its gallery extras, runs every
# gallery example and writes _out/gallery/index.html (open it in a browser; nothing needs the network).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh gallery
.venv/bin/symgrad gallery --out _out/gallery "$@"
