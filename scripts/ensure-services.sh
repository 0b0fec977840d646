#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests use answer on 127.0.0.1; start them if not.
# Idempotent: does nothing when both already answer. Exits 1 if one cannot be started.
set -u

WAIT_S=${WAIT_S:-15}

wait_for() {  # name, check command...
  local name=$1; shift
  local i
  for ((i = 0; i < WAIT_S * 4; i++)); do
    if "$@" >/dev/null 2>&1; then
      echo "services: $name is up"
      return 0
    fi
    sleep 0.25
  done
  echo "services: $name did not answer within ${WAIT_S}s" >&2
  return 1
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

status=0

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "services: pg_isready not found; cannot check PostgreSQL (install postgresql)" >&2
  status=1
elif pg_up; then
  echo "services: PostgreSQL already answers on 127.0.0.1:5432"
elif command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    echo "services: starting PostgreSQL $version (pg_ctlcluster $version main start)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  wait_for PostgreSQL pg_up || status=1
else
  echo "services: PostgreSQL is down and pg_ctlcluster is not available to start it" >&2
  status=1
fi

if ! command -v redis-cli >/dev/null 2>&1; then
  echo "services: redis-cli not found; cannot check Redis (install redis-tools)" >&2
  status=1
elif redis_up; then
  echo "services: Redis already answers on 127.0.0.1:6379"
elif command -v redis-server >/dev/null 2>&1; then
  echo "services: starting Redis (redis-server --daemonize yes, no persistence)"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for Redis redis_up || status=1
else
  echo "services: Redis is down and redis-server is not available to start it" >&2
  status=1
fi

exit $status
