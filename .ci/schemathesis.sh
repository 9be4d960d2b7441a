#!/usr/bin/env bash
# Runs schemathesis (pinned in .ci/requirements.txt) against a live `kiln serve` with the
# committed docs/openapi.json: no 5xx, and every response conforms to the document (status,
# content type, headers, body schema), with a token that has every scope and, for the auth
# checks, without one. Needs the `kiln` binary in $KILN_BIN. The coverage phase is left out:
# under CPython 3.11 it stops with an internal error of the tool ("AST constructor recursion
# depth mismatch") on the files route's path pattern, before sending a request.
set -euo pipefail
cd "$(dirname "$0")/.."
kiln="${KILN_BIN:?KILN_BIN must name the kiln binary}"
work="$(mktemp -d)"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

export KILN_QUIET=1
"$kiln" --data-dir "$work/data" sync examples/course --course demo >/dev/null
token="$("$kiln" --json token new fuzz --scopes read,ensure,write,admin |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["token"]); print(d["hash"])')"
hash="$(sed -n 2p <<<"$token")"
token="$(sed -n 1p <<<"$token")"
cat >"$work/kiln.toml" <<TOML
[[token]]
name = "fuzz"
scopes = ["read", "ensure", "write", "admin"]
hash = "$hash"

[[library]]
name = "cards"
source = { course = "demo" }
renderer = { command = ["cat"] }
content_type = "text/html"
TOML
"$kiln" --data-dir "$work/data" --config "$work/kiln.toml" worker --exit-when-idle 300ms >/dev/null
"$kiln" --data-dir "$work/data" --config "$work/kiln.toml" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
base=""
for _ in $(seq 1 100); do
    base="$(head -n1 "$work/serve.out" | grep -o 'http://[^ ]*' || true)"
    [ -n "$base" ] && break
    sleep 0.1
done
[ -n "$base" ] || { echo "schemathesis: kiln serve did not start:" >&2; cat "$work/serve.err" >&2; exit 1; }

echo "schemathesis: against $base"
schemathesis run "${KILN_SPEC:-docs/openapi.json}" \
    --url "$base" \
    -H "Authorization: Bearer $token" \
    --checks all \
    --phases examples,fuzzing,stateful \
    --max-examples "${KILN_FUZZ_EXAMPLES:-40}" \
    --workers 2 \
    --request-timeout 10 \
    --seed "${KILN_FUZZ_SEED:-1}" \
    --no-color
