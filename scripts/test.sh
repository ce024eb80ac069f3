#!/usr/bin/env bash
# Run the whole test suite (lint + pytest). Creates/reuses .venv with the test extras.
# Extra arguments go to pytest.
set -euo pipefail
. "$(dirname "$0")/bootstrap.sh" test
cd "$ROOT"
# PostgreSQL (reading tests run against it too), Debian's Chromium (browser tests) and a
# single-node SLURM (cluster tests)
. "$ROOT/scripts/services.sh"
ruff check weeke_pipeline tests benchmarks
exec python -m pytest "$@"
