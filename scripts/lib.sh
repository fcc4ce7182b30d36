# Shared helpers of scripts/run and scripts/test: find cargo, install missing Debian packages.
set -euo pipefail

ensure_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    # rustup installs put cargo here; a non-login shell may not have it on PATH.
    if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
  fi
  command -v cargo >/dev/null 2>&1 || {
    echo "cargo is not installed: install Rust (https://rustup.rs) and run this again" >&2
    exit 1
  }
}

# ensure_packages CMD:PACKAGE ... — apt-get installs PACKAGE when CMD is missing.
ensure_packages() {
  local missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# ensure_python_module MODULE DEBIAN_PACKAGE — makes `python3 -c "import MODULE"` work: pip
# for a user-installed Python (pyenv, venv), Debian's package for the system one (PEP 668).
ensure_python_module() {
  python3 -c "import $1" >/dev/null 2>&1 && return 0
  echo "installing the Python module $1" >&2
  python3 -m pip install --quiet "$1" >/dev/null 2>&1 && python3 -c "import $1" >/dev/null 2>&1 && return 0
  ensure_packages "__never__:$2"
  python3 -c "import $1" >/dev/null 2>&1
}
