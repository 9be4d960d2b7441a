#!/usr/bin/env bash
# Starts the services the backend suites need, on loopback, and prints `export` lines for
# them on stdout (so `.ci/run` can `eval "$(bash .ci/services.sh)"`); everything else goes to
# stderr. Idempotent: a service that already answers is left alone. Exits non-zero with a
# message naming the service if any cannot be started.
#   PostgreSQL  127.0.0.1:5432, trust auth, database `test`
#   Redis       127.0.0.1:6379, nothing kept on disk
#   S3          s3s-fs (installed with cargo if missing) on 127.0.0.1:$KILN_S3_PORT if set,
#               else 9100 if that is free or already s3s-fs, else a port the OS picks (kept in
#               ${TMPDIR:-/tmp}/kiln-ci-s3/port for the next run); data under
#               ${TMPDIR:-/tmp}/kiln-ci-s3, bucket `kiln-test`. What answers must be an S3
#               server that accepts the CI credentials, not merely an open port.
set -euo pipefail

say() { echo "services: $*" >&2; }
die() { echo "services: ERROR: $*" >&2; exit 1; }

PG_URL="postgres://postgres@127.0.0.1:5432/test"
REDIS_URL="redis://127.0.0.1:6379"
S3_DIR="${TMPDIR:-/tmp}/kiln-ci-s3"
S3_BUCKET="kiln-test"
S3_KEY="kilnci"
S3_SECRET="kilnci-secret"

# Polls `$@` until it succeeds, for at most $1 seconds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            die "$what did not answer within ${secs}s"
        fi
        sleep 0.2
    done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- PostgreSQL -----------------------------------------------------------------------------
command -v psql >/dev/null || die "postgresql: psql is not installed (apt-get install postgresql)"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    command -v pg_ctlcluster >/dev/null || die "postgresql: pg_ctlcluster is not installed"
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
    [[ -n "$version" ]] || die "postgresql: no cluster under /etc/postgresql"
    say "starting postgresql $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start </dev/null >&2 ||
        die "postgresql: pg_ctlcluster $version main start failed"
fi
wait_for 30 "postgresql at 127.0.0.1:5432" pg_isready -q -h 127.0.0.1 -p 5432
if ! psql "postgres://postgres@127.0.0.1:5432/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
    say "creating database test"
    psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "CREATE DATABASE test" >&2 ||
        die "postgresql: cannot create database test"
fi
psql "$PG_URL" -qtAc "SELECT 1" >/dev/null || die "postgresql: cannot query $PG_URL"

# --- Redis ----------------------------------------------------------------------------------
command -v redis-cli >/dev/null || die "redis: redis-cli is not installed (apt-get install redis-server)"
if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    command -v redis-server >/dev/null || die "redis: redis-server is not installed"
    say "starting redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log </dev/null >&2 ||
        die "redis: redis-server failed to start (see /var/log/redis/ci.log)"
fi
wait_for 30 "redis at 127.0.0.1:6379" sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'

# --- S3 (s3s-fs) ----------------------------------------------------------------------------
# A port that is open is not enough: another program on 9100 once answered every request with
# 501. A port counts only if a ListBuckets signed with the CI credentials gets an S3 answer;
# otherwise s3s-fs is started on a port the OS picks, and that port is remembered in
# $S3_DIR/port, so the next run finds (and reuses) the same server.
S3S="$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")"
if [[ ! -x "$S3S" ]]; then
    say "installing s3s-fs 0.14.1 (cargo install; a few minutes)"
    cargo install s3s-fs@0.14.1 --features binary --locked </dev/null >&2 ||
        die "s3: cargo install s3s-fs failed"
    S3S="$HOME/.cargo/bin/s3s-fs"
fi
mkdir -p "$S3_DIR/data"
# s3s-fs maps a bucket to a directory under its root.
mkdir -p "$S3_DIR/data/$S3_BUCKET"

# Whether 127.0.0.1:$1 is an S3 server that accepts the CI credentials. (s3s-fs wants the
# payload hash header, which older curls do not add on their own: this is an empty body's.)
s3_answers() {
    local body empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
    body=$(curl -sS --max-time 3 --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$S3_KEY:$S3_SECRET" -H "x-amz-content-sha256: $empty" \
        "http://127.0.0.1:$1/" 2>/dev/null) || return 1
    [[ "$body" == *"<ListAllMyBucketsResult"* ]]
}

# A free loopback port, from the OS.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Starts s3s-fs on port $1 and waits until it answers; fails if it exits or stays silent.
start_s3s() {
    local port=$1 pid deadline
    say "starting s3s-fs on 127.0.0.1:$port (data in $S3_DIR/data)"
    # Detached, with no inherited stdout: `$(.ci/services.sh)` must not wait for it.
    setsid "$S3S" --host 127.0.0.1 --port "$port" \
        --access-key "$S3_KEY" --secret-key "$S3_SECRET" "$S3_DIR/data" \
        </dev/null >"$S3_DIR/s3s-fs.log" 2>&1 &
    pid=$!
    deadline=$((SECONDS + 30))
    until s3_answers "$port"; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            kill "$pid" 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
    echo "$pid" >"$S3_DIR/pid"
    echo "$port" >"$S3_DIR/port"
}

S3_PORT=""
if [[ -n "${KILN_S3_PORT:-}" ]]; then
    # An explicit port is used as it is, or not at all.
    if s3_answers "$KILN_S3_PORT"; then
        S3_PORT=$KILN_S3_PORT
    elif port_open "$KILN_S3_PORT"; then
        die "s3: something that is not s3s-fs with the CI credentials answers on 127.0.0.1:$KILN_S3_PORT (KILN_S3_PORT)"
    elif start_s3s "$KILN_S3_PORT"; then
        S3_PORT=$KILN_S3_PORT
    else
        die "s3: s3s-fs did not start on 127.0.0.1:$KILN_S3_PORT (see $S3_DIR/s3s-fs.log)"
    fi
else
    remembered=$(cat "$S3_DIR/port" 2>/dev/null || true)
    for port in $remembered 9100; do
        if s3_answers "$port"; then
            S3_PORT=$port
            break
        fi
    done
    if [[ -z "$S3_PORT" ]]; then
        if port_open 9100; then
            say "127.0.0.1:9100 is taken by something that is not s3s-fs; using another port"
        fi
        # A few tries: another process may take a port between the pick and the bind.
        for _ in 1 2 3; do
            if port_open 9100; then port=$(free_port); else port=9100; fi
            if start_s3s "$port"; then
                S3_PORT=$port
                break
            fi
        done
        [[ -n "$S3_PORT" ]] || die "s3: s3s-fs did not start (see $S3_DIR/s3s-fs.log)"
    fi
fi
say "s3s-fs answers on 127.0.0.1:$S3_PORT"

# Under CI (nothing else is testing on this machine), drop what earlier test runs left: each
# test makes its own schema (`kiln_test_*`) or key prefix, and nothing else deletes them.
if [[ "${CI:-}" == "true" ]]; then
    stale=$(psql "$PG_URL" -tAc "SELECT count(*) FROM pg_namespace WHERE nspname ~ '^kiln_(test|bench)_'")
    if ((stale > 0)); then
        say "dropping $stale schemas of earlier test runs"
        psql "$PG_URL" -qtAc "SELECT nspname FROM pg_namespace WHERE nspname ~ '^kiln_(test|bench)_'" |
            while read -r schema; do
                psql "$PG_URL" -qc "DROP SCHEMA \"$schema\" CASCADE" >/dev/null 2>&1 || true
            done
    fi
    redis-cli -h 127.0.0.1 -p 6379 --scan --pattern 'kiln_test_*' |
        xargs -r -d '\n' -n 500 redis-cli -h 127.0.0.1 -p 6379 unlink >/dev/null || true
fi

say "postgresql, redis and s3 are up"
cat <<EXPORTS
export TEST_POSTGRES_URL='$PG_URL'
export TEST_REDIS_URL='$REDIS_URL'
export TEST_S3_ENDPOINT='http://127.0.0.1:$S3_PORT'
export TEST_S3_BUCKET='$S3_BUCKET'
export AWS_ACCESS_KEY_ID='$S3_KEY'
export AWS_SECRET_ACCESS_KEY='$S3_SECRET'
export AWS_REGION='us-east-1'
EXPORTS
