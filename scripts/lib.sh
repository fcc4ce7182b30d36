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
