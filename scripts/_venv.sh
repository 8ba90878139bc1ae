# Sourced by test.sh and gallery.sh: make .venv from nothing but Python and install symgrad
# (editable) with the extras named in $1 (test or gallery).
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[$1]"
