#!/usr/bin/env bash
# Run the whole weeke-pipeline demo on the embedded defaults (sample_data/, shipped atlas
# and form). Creates/reuses .venv. Extra arguments go to `weeke demo`.
set -euo pipefail
. "$(dirname "$0")/bootstrap.sh"
cd "$ROOT"
exec weeke demo "$@"
