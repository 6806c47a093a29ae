# Sourced by scripts/dev and scripts/test: a virtualenv in .venv with TaskFlow installed
# (editable), reinstalled only when a pyproject.toml changed. Python: $PYTHON or python3 (3.11+).
ensure_venv() {
  local python="${PYTHON:-python3}"
  if [[ ! -x .venv/bin/python ]]; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "needs Python 3.11 or newer as '$python' (set PYTHON=/path/to/python3)" >&2
      return 1
    fi
    echo "creating .venv" >&2
    "$python" -m venv .venv
  fi
  local stamp=.venv/.taskflow-installed wanted
  wanted="$(cat pyproject.toml client/pyproject.toml | sha256sum | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
    echo "installing TaskFlow into .venv (this takes a minute the first time)" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e client -e '.[dev]'
    echo "$wanted" >"$stamp"
  fi
}
