#!/usr/bin/env bash
# Runs a command beside a throwaway PostgreSQL server, for the watchtower's PostgreSQL tests:
#   script/postgres.sh cargo test -p keel-watchtower
# Installs Debian's postgresql if its binaries are missing, creates a cluster in a temp
# directory owned by an unprivileged user (PostgreSQL refuses to run as root: as root the
# server runs as the `postgres` user the package creates), starts it on a free 127.0.0.1 port,
# runs the command with KEEL_TEST_POSTGRES_URL naming it, then stops it and removes the
# directory, whatever the command's outcome. Exits with the command's status.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: script/postgres.sh <command> [args...]" >&2; exit 2; }

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin=$(bindir)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
  echo "PostgreSQL is not installed: installing Debian's postgresql" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y postgresql
  bin=$(bindir)
fi

# The server's user: ourselves, unless we are root.
as_owner() { "$@"; }
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  as_owner() { runuser -u postgres -- "$@"; }
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/keel-postgres.XXXXXX")
chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
stop() {
  as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

# A port nobody listens on now (the kernel picks it; released just before the server binds it).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Trust authentication: the server listens on 127.0.0.1 only and lives as long as this script.
as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
  cat "$dir/initdb.log" >&2
  exit 1
}
# -F: no fsync (throwaway data); -k: the Unix socket in the temp directory, not /var/run.
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-h 127.0.0.1 -p $port -k $dir -F -c max_connections=200" start >/dev/null || {
  cat "$dir/server.log" >&2
  exit 1
}
export KEEL_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($dir)" >&2

status=0
"$@" || status=$?
exit "$status"
