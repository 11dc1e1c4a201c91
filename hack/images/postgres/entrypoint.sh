#!/bin/sh
# The chart's bundled PostgreSQL: make the cluster in $PGDATA the first time (the superuser
# $POSTGRES_USER with $POSTGRES_PASSWORD, scram-sha-256 over TCP, and the database $POSTGRES_DB),
# then run the server in the foreground with the arguments given (the chart's `-c port=…`).
# Nothing is written outside $PGDATA but the password file, in /tmp and gone before the server
# starts: the root filesystem may be read-only.
set -eu
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "videojob-postgres: POSTGRES_PASSWORD is not set" >&2
  exit 1
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-host=scram-sha-256 \
    --auth-local=trust --encoding=UTF8 --locale=C.UTF-8 --no-instructions >/dev/null
  rm -f "$pwfile"
  # Any address may try; only the password lets it in (the chart's NetworkPolicy narrows who
  # may try). The socket in /var/run/postgresql, an emptyDir of this pod, is reached from this
  # container only, as the official image's trust on it assumes.
  printf '%s\n' "host all all 0.0.0.0/0 scram-sha-256" "host all all ::/0 scram-sha-256" \
    >> "$PGDATA/pg_hba.conf"
  # The database, made by a server that listens on the socket alone while it does.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -qc \
      "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\"" >/dev/null
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
