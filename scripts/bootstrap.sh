# Sourced by scripts/demo.sh and scripts/test.sh: create or reuse .venv and install the
# project into it with every part (the `all` extra: pipeline and reading) plus EXTRAS.
# Idempotent: reinstalls only when pyproject.toml changed.
# Usage: . scripts/bootstrap.sh [EXTRAS]     (e.g. "test")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${WEEKE_VENV:-$ROOT/.venv}"
EXTRAS="all${1:+,$1}"
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "weeke-pipeline needs Python >= 3.11 ($PY is $("$PY" --version 2>&1))" >&2
  exit 1
fi
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  echo "the virtual environment $VENV is incomplete (an interrupted set-up?): recreating it" >&2
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    # Debian splits venv/ensurepip into python3-venv.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing python3-venv (Debian)" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$VENV"; "$PY" -m venv "$VENV"
    else
      echo "cannot create a virtual environment: install python3-venv" >&2; exit 1
    fi
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
STAMP="$VENV/.weeke-install-stamp"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)-${EXTRAS}"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing weeke-pipeline[$EXTRAS] into $VENV (first run takes about a minute)" >&2
  spec="$ROOT[$EXTRAS]"
  "$VENV/bin/python" -m pip install -q -e "$spec"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# nipype's Dcm2niix interface finds the binary only on PATH: put the PyPI package's folder there.
DCM2NIIX_DIR="$("$VENV/bin/python" -c 'import dcm2niix, os; print(os.path.dirname(dcm2niix.bin))')"
export PATH="$DCM2NIIX_DIR:$PATH"
export ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="${ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS:-2}"
