#!/usr/bin/env bash
# Detect PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379); start them where this
# machine can, otherwise say clearly what is missing. Sourced by .ci/test and .ci/serve.

pg_ready() {
    python3 - <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", 5432)) == 0 else 1)
PY
}

redis_ready() {
    python3 - <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", 6379)); s.sendall(b"PING\r\n"); sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

ensure_postgres() {
    pg_ready && return 0
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        echo "services: starting PostgreSQL" >&2
        for version in $(ls /etc/postgresql); do
            pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
        done
        for _ in $(seq 1 30); do pg_ready && return 0; sleep 1; done
    fi
    echo "services: PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started here." >&2
    echo "services: install PostgreSQL 15 (apt-get install postgresql) or set TEST_POSTGRES_URL." >&2
    return 1
}

ensure_redis() {
    redis_ready && return 0
    if command -v redis-server >/dev/null 2>&1; then
        echo "services: starting Redis" >&2
        mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
            --dir /tmp --logfile /tmp/ticketing-redis.log >&2 || true
        for _ in $(seq 1 20); do redis_ready && return 0; sleep 0.5; done
    fi
    echo "services: Redis is not reachable on 127.0.0.1:6379 (needed only by the shared rate-limit tests)." >&2
    return 1
}
