#!/usr/bin/env bash
# Provides the engines tests and benchmarks need, without touching the system's configuration:
#   - nats-server >= 2.10: the one on PATH if new enough, else Debian trixie's static binary,
#     unpacked into .engines/nats-server/ (git-ignored);
#   - PostgreSQL server binaries (initdb, pg_ctl, postgres), located on PATH or under
#     /usr/lib/postgresql/*/bin (located only: a warning, not a failure, when missing).
# Writes what it found to .engines/engines.env. Idempotent; fast when everything is in place.
set -euo pipefail
quiet=0
for arg in "$@"; do
  case "$arg" in
    --quiet) quiet=1 ;;
    *) echo "usage: bash scripts/setup-engines.sh [--quiet]" >&2; exit 2 ;;
  esac
done
say() { if [ "$quiet" != 1 ]; then echo "setup-engines: $*"; fi; }
fail() { echo "setup-engines: $*" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
engines="$root/.engines"
mkdir -p "$engines"

# version_ok <binary>: true when `<binary> --version` reports 2.10 or later.
version_ok() {
  local v
  v=$("$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1) || return 1
  [ -n "$v" ] || return 1
  local major minor
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }
}

nats=""
if [ -n "${STRATA_NATS_SERVER:-}" ] && version_ok "$STRATA_NATS_SERVER"; then
  nats="$STRATA_NATS_SERVER"
elif command -v nats-server >/dev/null 2>&1 && version_ok "$(command -v nats-server)"; then
  nats=$(command -v nats-server)
elif [ -x "$engines/nats-server/nats-server" ] && version_ok "$engines/nats-server/nats-server"; then
  nats="$engines/nats-server/nats-server"
else
  command -v apt-get >/dev/null 2>&1 || fail "no nats-server >= 2.10 found and no apt-get to fetch one; install nats-server 2.10+ and put it on PATH (or set STRATA_NATS_SERVER)"
  if [ "$(id -u)" != 0 ]; then
    fail "no nats-server >= 2.10 found; run 'sudo bash scripts/setup-engines.sh' once, or install nats-server 2.10+ and put it on PATH"
  fi
  # The Debian mirror apt already uses, read at run time (deb822 .sources or one-line .list).
  mirror=$( (grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
             grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}') \
           | grep -E '/debian/?$' | head -1) || true
  [ -n "$mirror" ] || fail "cannot find the Debian mirror in /etc/apt sources; install nats-server 2.10+ by hand"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
  echo "deb ${mirror%/} trixie main" > "$tmp/trixie.list"
  apt_opts=(-o Dir::Etc::sourcelist="$tmp/trixie.list" -o Dir::Etc::sourceparts=- \
            -o Dir::State::Lists="$tmp/lists" -o APT::Get::List-Cleanup=0 \
            -o Dir::Cache::Archives="$tmp/archives")
  say "fetching nats-server from Debian trixie (the system's is missing or older than 2.10)"
  apt-get update -qq "${apt_opts[@]}" >/dev/null 2>&1 || fail "apt-get update for trixie failed"
  (cd "$tmp" && apt-get download -qq "${apt_opts[@]}" nats-server >/dev/null 2>&1) || fail "apt-get download nats-server failed"
  dpkg -x "$tmp"/nats-server_*.deb "$tmp/x"
  mkdir -p "$engines/nats-server"
  install -m 0755 "$tmp/x/usr/sbin/nats-server" "$engines/nats-server/nats-server.$$"
  mv -f "$engines/nats-server/nats-server.$$" "$engines/nats-server/nats-server"
  nats="$engines/nats-server/nats-server"
  version_ok "$nats" || fail "the fetched nats-server does not run or is older than 2.10"
fi

# pg_dir <dir>: true when <dir> holds the three server binaries the harness runs.
pg_dir() { [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }

pg=""
if command -v pg_ctl >/dev/null 2>&1; then
  # Resolve symlinks (Debian images link /usr/local/bin/pg_ctl into /usr/lib/postgresql/<v>/bin):
  # the real folder also holds pg_basebackup, which hot standbys need.
  dir=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
  if pg_dir "$dir"; then pg="$dir"; fi
fi
if [ -z "$pg" ]; then
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
    if pg_dir "$dir"; then pg="$dir"; fi # the last one is the newest
  done
fi
# PostgreSQL is only located, never installed: only its tests need it, and they say so.
if [ -z "$pg" ]; then
  echo "setup-engines: warning: no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or under /usr/lib/postgresql/*/bin; PostgreSQL tests will fail until PostgreSQL 15+ is installed (or STRATA_PG_BIN is set)" >&2
fi

# Written whole then renamed, so a reader never sees half a file.
{
  echo "STRATA_NATS_SERVER=$nats"
  echo "STRATA_PG_BIN=$pg"
} > "$engines/engines.env.$$"
mv -f "$engines/engines.env.$$" "$engines/engines.env"
say "nats-server $("$nats" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1) at $nats; PostgreSQL binaries: ${pg:-not found}"
