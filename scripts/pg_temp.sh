#!/usr/bin/env bash
# A throw-away PostgreSQL 15 for tests and benchmarks (docs/cdc.md, "Testing against
# PostgreSQL"). Nothing outside DIR is touched; the server listens on 127.0.0.1 only.
#
#   bash scripts/pg_temp.sh start DIR   initdb into DIR/pgdata when missing, start the server
#                                       on a free loopback port (the same port as before when
#                                       DIR was started earlier), make role and database
#                                       `ffe`, wait until it accepts connections, and print
#                                       exactly one line: postgresql://ffe@127.0.0.1:PORT/ffe
#   bash scripts/pg_temp.sh stop DIR    fast shutdown; returns once stopped; idempotent
#
# Runs initdb/postgres as an unprivileged user: as root, Debian's `postgres` system user
# (DIR is chowned to it, so DIR's parents must be searchable by it: /tmp/x is fine); as
# anyone else, that user. Auth is `trust`, on loopback and DIR's unix socket only.
# Logs: DIR/postgres.log (server), DIR/pg_temp.log (this script's commands).
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
START_TIMEOUT_S=60  # pg_ctl's wait for start and stop (crash recovery may precede a start)
PORT_ATTEMPTS_MAX=5 # a free port can be taken between the probe and postgres binding it

die() { echo "pg_temp.sh: $*" >&2; exit 1; }

[[ $# -eq 2 && ( $1 == start || $1 == stop ) ]] || die "usage: pg_temp.sh start|stop DIR"
CMD=$1
DIR=$2
[[ -x $PGBIN/initdb && -x $PGBIN/pg_ctl && -x $PGBIN/psql ]] ||
  die "PostgreSQL 15 is not installed ($PGBIN/initdb missing): run scripts/setup.sh (Debian package postgresql)"

if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 ||
    die "running as root but there is no 'postgres' user: run scripts/setup.sh (Debian package postgresql creates it)"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

if [[ $CMD == stop && ! -d $DIR ]]; then exit 0; fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PGDATA=$DIR/pgdata
LOG=$DIR/pg_temp.log

running() { [[ -f $PGDATA/postmaster.pid ]] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

if [[ $CMD == stop ]]; then
  [[ -d $PGDATA ]] || exit 0
  running || exit 0
  if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t "$START_TIMEOUT_S" stop >>"$LOG" 2>&1; then
    # Still up after the timeout: stop it by its own pid file, nothing broader.
    pid=$(head -1 "$PGDATA/postmaster.pid" 2>/dev/null || true)
    if [[ -n $pid ]]; then kill -9 "$pid" 2>/dev/null || true; fi
    die "postgres in $DIR did not stop within ${START_TIMEOUT_S}s; killed pid $pid (see $LOG)"
  fi
  exit 0
fi

free_port() {
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1; then
      "$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' && return
    fi
  done
  die "python3 is needed to find a free port: run scripts/setup.sh"
}

if [[ $(id -u) -eq 0 ]]; then
  chown postgres:postgres "$DIR"
  as_pg test -w "$DIR" -a -x "$DIR" ||
    die "$DIR is not usable by the postgres user: its parent directories must be searchable by it (use a directory under /tmp)"
fi

if [[ ! -f $PGDATA/PG_VERSION ]]; then
  rm -rf "$PGDATA"
  # --no-sync: a test cluster's initdb need not survive a power cut; the server itself runs
  # with fsync on (a benchmark against it must pay what production pays).
  as_pg "$PGBIN/initdb" -D "$PGDATA" -A trust -U postgres --no-locale -E UTF8 --no-sync >>"$LOG" 2>&1 ||
    die "initdb into $PGDATA failed (see $LOG)"
  cat >>"$PGDATA/postgresql.conf" <<EOF
# pg_temp.sh: loopback only, sockets in the test's own dir, small footprint.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
max_connections = 40
shared_buffers = 32MB
EOF
fi

url() { echo "postgresql://ffe@127.0.0.1:$1/ffe"; }

if running; then
  [[ -f $DIR/port ]] || die "postgres runs in $DIR but $DIR/port is missing"
  url "$(cat "$DIR/port")"
  exit 0
fi

start_on() {  # start_on PORT: 0 when the server accepts connections
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$DIR/postgres.log" -o "-p $1" -w -t "$START_TIMEOUT_S" start >>"$LOG" 2>&1
}

if [[ -f $DIR/port ]]; then
  PORT=$(cat "$DIR/port")
  start_on "$PORT" ||
    die "postgres in $DIR did not start on its port $PORT (taken by another process?); see $DIR/postgres.log"
else
  started=0
  for ((attempt = 1; attempt <= PORT_ATTEMPTS_MAX; attempt++)); do
    PORT=$(free_port)
    if start_on "$PORT"; then started=1; break; fi
    if running; then as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >>"$LOG" 2>&1 || true; fi
  done
  [[ $started -eq 1 ]] || die "postgres in $DIR did not start after $PORT_ATTEMPTS_MAX ports; see $DIR/postgres.log"
  echo "$PORT" >"$DIR/port"
fi

PSQL=("$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1)
for ((i = 0; i < 100; i++)); do  # pg_ctl -w already waited; this covers a slow first accept
  "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PORT" -q && break
  sleep 0.1
done
if [[ -z $("${PSQL[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'ffe'" 2>>"$LOG") ]]; then
  "${PSQL[@]}" -c "CREATE ROLE ffe LOGIN CREATEDB" >>"$LOG" 2>&1 || die "creating role ffe failed (see $LOG)"
fi
if [[ -z $("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'ffe'" 2>>"$LOG") ]]; then
  "${PSQL[@]}" -c "CREATE DATABASE ffe OWNER ffe" >>"$LOG" 2>&1 || die "creating database ffe failed (see $LOG)"
fi
url "$PORT"
