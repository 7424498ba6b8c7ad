#!/usr/bin/env bash
# Provides the engines tests and benchmarks need, without touching the system's configuration:
#   - nats-server >= 2.10: the one on PATH if new enough, else Debian trixie's static binary,
#     unpacked into .engines/nats-server/ (git-ignored);
#   - PostgreSQL server binaries (initdb, pg_ctl, postgres), located on PATH or under
#     /usr/lib/postgresql/*/bin.
# Writes what it found to .engines/engines.env. Idempotent; fast when everything is in place.
set -euo pipefail
quiet=0
if [ "${1:-}" = "--quiet" ]; then quiet=1; fi
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
  install -m 0755 "$tmp/x/usr/sbin/nats-server" "$engines/nats-server/nats-server"
  nats="$engines/nats-server/nats-server"
  version_ok "$nats" || fail "the fetched nats-server does not run or is older than 2.10"
fi

pg=""
if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
  pg=$(dirname "$(command -v pg_ctl)")
else
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ] && pg="$dir"
  done
fi

if [ -z "$pg" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  say "installing PostgreSQL server binaries (none found)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || fail "could not install PostgreSQL; install PostgreSQL 15+ server binaries by hand"
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ] && pg="$dir"
  done
fi
[ -n "$pg" ] || fail "no PostgreSQL server binaries (initdb, postgres) found; install PostgreSQL 15+"

{
  echo "STRATA_NATS_SERVER=$nats"
  echo "STRATA_PG_BIN=$pg"
} > "$engines/engines.env"
say "nats-server $("$nats" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1) at $nats; PostgreSQL binaries: ${pg:-not found}"
