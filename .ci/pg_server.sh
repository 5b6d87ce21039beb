#!/usr/bin/env bash
# A throwaway PostgreSQL for the catalog tests: `.ci/pg_server.sh start DIR` prints its SQLAlchemy
# URL (127.0.0.1, a free port, data in DIR); `.ci/pg_server.sh stop DIR` stops it.
# Installs PostgreSQL with apt-get when it is missing. initdb/postgres refuse to run as root, so
# as root they run as the `postgres` OS user (created if absent).
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?data folder}

pgbin() {
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return; }; done
  command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return; }
  return 1
}

as_pg() {  # run a command as a non-root user when we are root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "$cmd" = stop ]; then
  bin=$(pgbin) && [ -f "$dir/data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true
  exit 0
fi

if ! bin=$(pgbin); then
  echo "installing PostgreSQL (apt-get)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
  bin=$(pgbin)
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then useradd --system --no-create-home postgres; fi
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$bin/initdb" -D "$dir/data" --no-sync -A trust -U postgres -E UTF8 >"$dir/initdb.log" 2>&1
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null
echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
