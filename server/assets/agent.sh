#!/bin/sh
# restic-manager agent installer. Served by the server with its URL and a one-time enrolment
# token filled in. It installs the agent binary and a sandboxed systemd unit, enrols, starts
# the service, and lists existing restic schedules (cron, systemd timers) with the commands to
# disable them. It never disables anything itself.
#
# RM_INSTALL_PREFIX=/some/root installs under that root instead of / (used by tests);
# RM_INSTALL_NO_SYSTEMCTL=1 skips systemctl.
set -eu

SERVER='@SERVER@'
TOKEN='@TOKEN@'
CERT_PIN='@CERT_PIN@'
PREFIX="${RM_INSTALL_PREFIX:-}"

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

case "$(uname -s)" in
  Linux) OS=linux ;;
  *) die "unsupported operating system: $(uname -s)" ;;
esac
case "$(uname -m)" in
  x86_64|amd64) ARCH=x86_64 ;;
  aarch64|arm64) ARCH=aarch64 ;;
  *) die "unsupported architecture: $(uname -m)" ;;
esac

BIN_DIR="$PREFIX/usr/local/bin"
BIN="$BIN_DIR/restic-manager-agent"
CONF_DIR="$PREFIX/etc/restic-manager"
STATE_DIR="$PREFIX/var/lib/restic-manager"
UNIT_DIR="$PREFIX/etc/systemd/system"

mkdir -p "$BIN_DIR" "$CONF_DIR" "$STATE_DIR" "$UNIT_DIR"
chmod 0700 "$CONF_DIR" "$STATE_DIR"

say "Downloading the agent for $OS/$ARCH from $SERVER"
TMP="$BIN.download.$$"
if command -v curl >/dev/null 2>&1; then
  curl -fsSL -o "$TMP" "$SERVER/agent/binary/$OS/$ARCH" || die "download failed"
elif command -v wget >/dev/null 2>&1; then
  wget -q -O "$TMP" "$SERVER/agent/binary/$OS/$ARCH" || die "download failed"
else
  die "neither curl nor wget is installed"
fi
chmod 0755 "$TMP"
mv -f "$TMP" "$BIN"

cat > "$UNIT_DIR/restic-manager-agent.service" <<'UNIT'
@UNIT@
UNIT
chmod 0644 "$UNIT_DIR/restic-manager-agent.service"

if [ -f "$CONF_DIR/agent.toml" ]; then
  say "Already enrolled ($CONF_DIR/agent.toml exists): keeping that enrolment."
else
  say "Enrolling with $SERVER"
  if [ -n "$CERT_PIN" ]; then
    "$BIN" enroll --server "$SERVER" --token "$TOKEN" --config "$CONF_DIR/agent.toml" \
      --state-dir "$STATE_DIR" --cert-pin "$CERT_PIN"
  else
    "$BIN" enroll --server "$SERVER" --token "$TOKEN" --config "$CONF_DIR/agent.toml" \
      --state-dir "$STATE_DIR"
  fi
fi

if [ -z "${RM_INSTALL_NO_SYSTEMCTL:-}" ] && [ -z "$PREFIX" ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
  systemctl enable --now restic-manager-agent.service
  say "Service restic-manager-agent started."
else
  say "Not starting the service (no systemctl, or installing under a prefix)."
fi

# Existing restic schedules: list them, with the exact commands to disable each.
found=0
report() { found=1; say "  $1"; say "    disable with: $2"; }
say ""
say "Looking for restic schedules that restic-manager would duplicate..."
for f in "$PREFIX"/etc/cron.d/* "$PREFIX"/etc/cron.hourly/* "$PREFIX"/etc/cron.daily/* \
         "$PREFIX"/etc/cron.weekly/* "$PREFIX"/etc/cron.monthly/*; do
  [ -f "$f" ] || continue
  grep -qi restic "$f" 2>/dev/null || continue
  real="${f#"$PREFIX"}"
  report "cron: $real" "sudo mv '$real' '$real.disabled'"
done
if [ -f "$PREFIX/etc/crontab" ]; then
  grep -ni restic "$PREFIX/etc/crontab" 2>/dev/null | while IFS=: read -r n _; do
    say "  cron: /etc/crontab line $n"
    say "    disable with: sudo sed -i '${n}s/^/# /' /etc/crontab"
  done
  grep -qi restic "$PREFIX/etc/crontab" 2>/dev/null && found=1
fi
for f in "$PREFIX"/var/spool/cron/crontabs/*; do
  [ -f "$f" ] || continue
  grep -qi restic "$f" 2>/dev/null || continue
  user="$(basename "$f")"
  report "crontab of $user" "sudo crontab -u $user -l | sed '/restic/s/^/# /' | sudo crontab -u $user -"
done
for d in "$PREFIX/etc/systemd/system" "$PREFIX/lib/systemd/system" "$PREFIX/usr/lib/systemd/system"; do
  for t in "$d"/*.timer; do
    [ -f "$t" ] || continue
    name="$(basename "$t")"
    svc="$d/${name%.timer}.service"
    if printf '%s' "$name" | grep -qi restic || { [ -f "$svc" ] && grep -qi restic "$svc"; }; then
      report "systemd timer: $name" "sudo systemctl disable --now $name"
    fi
  done
done
if [ -z "$PREFIX" ] && command -v systemctl >/dev/null 2>&1; then
  systemctl list-timers --all --no-legend 2>/dev/null | grep -i restic | while read -r line; do
    say "  active timer: $line"
  done
fi
if [ "$found" -eq 0 ]; then
  say "  none found."
else
  say "restic-manager did not disable any of these. Disable them once the agent's schedules replace them."
fi
say ""
say "Done. The host appears in the dashboard once the agent connects."
