#!/bin/sh
# The part of the public postgres image's entry point that docker-compose.yml relies on: on an
# empty data folder, create the cluster with POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB;
# then run the server in the foreground, listening on every address with password auth.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        "$bin/postgres" -D "$PGDATA" -c listen_addresses= -k /run/postgresql &
        pid=$!
        for _ in $(seq 1 50); do "$bin/pg_isready" -q -h /run/postgresql && break; sleep 0.2; done
        "$bin/psql" -q -h /run/postgresql -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
        kill "$pid"; wait "$pid" || true
    fi
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -k /run/postgresql
