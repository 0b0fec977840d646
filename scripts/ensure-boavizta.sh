#!/usr/bin/env bash
# Boavizta's methodology and data (boaviztapi) in a Python environment of its own, .boavizta/
# beside .venv/: boaviztapi pins FastAPI and uvicorn below Continuum's, so installing it in
# .venv would break `pip check` (docs/carbon.md). Continuum runs Boavizta's own functions
# there, offline, through orchestrator/carbon/boavizta_worker.py. Idempotent.
set -eu
PYTHON="${PYTHON:-python3}"
DIR="${1:-.boavizta}"
REQ="$(dirname "$0")/boavizta-requirements.txt"
if [ -f "$DIR/.installed" ] && [ "$DIR/.installed" -nt "$REQ" ]; then
  exit 0
fi
echo "boavizta: installing $(grep -v '^#' "$REQ" | tr '\n' ' ')into $DIR"
"$PYTHON" -m venv "$DIR"
"$DIR/bin/python" -m pip install --quiet --upgrade pip
"$DIR/bin/python" -m pip install --quiet -r "$REQ"
"$DIR/bin/python" -m pip check
touch "$DIR/.installed"
