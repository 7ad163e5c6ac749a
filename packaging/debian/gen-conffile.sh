#!/usr/bin/env bash
# Writes packaging/debian/switchyard.toml, the Debian package's conffile
# (/etc/switchyard/switchyard.toml), from examples/full.toml: the same keys,
# defaults and one-line explanations, with every key line commented out
# ("#key = value"; explanations keep "# ") and the [section] lines kept, so
# that uncommenting a key in place works. Run it after changing
# examples/full.toml:  bash packaging/debian/gen-conffile.sh
# One key is on in the package: [store] persist, so a restart of the
# single-node default keeps its registrations (in the StateDirectory).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
full="$here/../../examples/full.toml"
out="${1:-$here/switchyard.toml}"
{
    cat <<'HEADER'
# /etc/switchyard/switchyard.toml: the configuration of switchyard.service.
# Every key is listed at its default, commented out: uncomment a key (keep
# its [section] line) and change it. Every key is optional.
#   switchyard check-config /etc/switchyard/switchyard.toml
# validates the file and prints the effective settings; then
#   systemctl reload switchyard     (SIGHUP: re-reads this file)
#   systemctl restart switchyard    (what a reload cannot change)
# Logs: journalctl -u switchyard. State (registrations): /var/lib/switchyard.
HEADER
    # Drop full.toml's own header (up to its first blank line), then comment
    # out `key = value` lines and normalise `# key = example` to `#key = ...`.
    awk 'started { print; next } /^$/ { started = 1; print }' "$full" |
        sed -E -e 's/^([A-Za-z0-9_."-]+ = )/#\1/' -e 's/^# ([A-Za-z0-9_."-]+ = )/#\1/' \
            -e 's|^#persist = "/var/lib/switchyard/|persist = "/var/lib/switchyard/|'
} >"$out"
echo "wrote $out" >&2
