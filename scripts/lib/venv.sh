# Sourced by scripts/dev and scripts/test: a virtualenv in .venv with the project installed
# (editable), reinstalled only when a pyproject file changed.
ensure_venv() {
  local py="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
  fi
  local stamp=.venv/.taskflow-install
  local want
  want=$(cat pyproject.toml client/pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e client -e '.[dev]'
    echo "$want" > "$stamp"
  fi
}
