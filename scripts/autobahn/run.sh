#!/usr/bin/env bash
# Runs the Autobahn|Testsuite against one of our runtimes and checks the result.
#
#   scripts/autobahn/run.sh server RUNTIME [--quick]
#       wstest -m fuzzingclient tests our server:
#       $CONFORMANCE_SERVER --runtime RUNTIME --listen 127.0.0.1:PORT
#   scripts/autobahn/run.sh client RUNTIME [--quick]
#       wstest -m fuzzingserver on 127.0.0.1:PORT tests our client:
#       $AUTOBAHN_CLIENT --runtime RUNTIME --url ws://127.0.0.1:PORT --agent switchboard-RUNTIME
#       (getCaseCount, runCase?case=N&agent=..., updateReports)
#
#   --quick   exclude cases 12.* and 13.* (permessage-deflate)
#
# Afterwards check.py compares the report with expected-<mode>.json; the exit
# status is non-zero on any mismatch, or if the tested program failed.
#
# Environment:
#   CONFORMANCE_SERVER       server binary (default: <project>/target/release/conformance-server)
#   AUTOBAHN_CLIENT          client binary (default: <project>/target/release/autobahn-client)
#   AUTOBAHN_PORT            port to use (default: a free one)
#   AUTOBAHN_CASES           comma-separated case patterns to run (default: *)
#   AUTOBAHN_EXCLUDE         comma-separated case patterns to exclude (added to --quick's)
#   AUTOBAHN_TIMEOUT         seconds for the whole suite (default: 1800)
#   AUTOBAHN_STARTUP_TIMEOUT seconds to wait for the port to accept (default: 30)
#   AUTOBAHN_CACHE_DIR       see install.sh (default: <project>/.cache/autobahn)
#
# Reports, the rendered spec and the logs go to .cache/autobahn/reports/MODE-RUNTIME/.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
CACHE_DIR=${AUTOBAHN_CACHE_DIR:-$PROJECT_DIR/.cache/autobahn}
export AUTOBAHN_CACHE_DIR=$CACHE_DIR

usage() {
  echo "usage: $0 server|client RUNTIME [--quick]" >&2
  exit 2
}
log() { printf 'autobahn: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $# -ge 2 ]] || usage
MODE=$1
RUNTIME=$2
shift 2
QUICK=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    *) usage ;;
  esac
  shift
done
case $MODE in server | client) ;; *) usage ;; esac
[[ $RUNTIME =~ ^[A-Za-z0-9._-]+$ ]] || die "bad runtime name '$RUNTIME'"

NAME=$MODE-$RUNTIME
OUTDIR=$CACHE_DIR/reports/$NAME
AGENT=switchboard-$RUNTIME
TIMEOUT=${AUTOBAHN_TIMEOUT:-1800}
STARTUP_TIMEOUT=${AUTOBAHN_STARTUP_TIMEOUT:-30}
EXCLUDE=${AUTOBAHN_EXCLUDE:-}
if [[ $QUICK == 1 ]]; then
  EXCLUDE="12.*,13.*${EXCLUDE:+,$EXCLUDE}"
fi

if [[ $MODE == server ]]; then
  PROGRAM=${CONFORMANCE_SERVER:-$PROJECT_DIR/target/release/conformance-server}
else
  PROGRAM=${AUTOBAHN_CLIENT:-$PROJECT_DIR/target/release/autobahn-client}
fi
[[ -x $PROGRAM ]] || die "$PROGRAM not found or not executable (build it first)"

WSTEST=$("$SCRIPT_DIR/install.sh")
export PYTHONWARNINGS=ignore # cryptography's Python 2 deprecation warning
VENV_PY=$(dirname "$WSTEST")/python

PORT=${AUTOBAHN_PORT:-$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')}

rm -rf "$OUTDIR"
mkdir -p "$OUTDIR"

if [[ $MODE == server ]]; then
  TEMPLATE=$SCRIPT_DIR/fuzzingclient.json.in
else
  TEMPLATE=$SCRIPT_DIR/fuzzingserver.json.in
fi
python3 - "$TEMPLATE" "$OUTDIR/spec.json" "$OUTDIR" "$AGENT" "$PORT" \
  "${AUTOBAHN_CASES:-*}" "$EXCLUDE" <<'PY'
import json, sys
template, out, outdir, agent, port, cases, exclude = sys.argv[1:]
def patterns(s):
    return [p.strip() for p in s.split(",") if p.strip()]
text = open(template).read()
for key, value in {
    "@OUTDIR@": json.dumps(outdir)[1:-1],
    "@AGENT@": json.dumps(agent)[1:-1],
    "@PORT@": str(int(port)),
    "@CASES@": json.dumps(patterns(cases)),
    "@EXCLUDE_CASES@": json.dumps(patterns(exclude)),
}.items():
    text = text.replace(key, value)
json.loads(text)  # must be valid JSON now
open(out, "w").write(text)
PY
NCASES=$("$VENV_PY" "$SCRIPT_DIR/expand_cases.py" "$OUTDIR/spec.json" "$OUTDIR/cases.json")

BG_PID=
stop_bg() {
  local pid=$BG_PID
  BG_PID=
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
trap stop_bg EXIT
trap 'exit 130' INT TERM

# wait_port PID: 0 once 127.0.0.1:$PORT accepts, 2 if PID exited, 1 on timeout.
wait_port() {
  local pid=$1 deadline=$((SECONDS + STARTUP_TIMEOUT))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || return 2
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

tail_log() {
  log "last lines of $1:"
  tail -n "${2:-30}" "$1" | sed 's/^/    /' >&2 || true
}

FAILED=0
start=$SECONDS

if [[ $MODE == server ]]; then
  log "$NAME: starting $PROGRAM on 127.0.0.1:$PORT"
  "$PROGRAM" --runtime "$RUNTIME" --listen "127.0.0.1:$PORT" >"$OUTDIR/server.log" 2>&1 &
  BG_PID=$!
  wrc=0
  wait_port "$BG_PID" || wrc=$?
  if [[ $wrc != 0 ]]; then
    tail_log "$OUTDIR/server.log"
    [[ $wrc == 2 ]] && die "$NAME: the server exited before accepting connections"
    die "$NAME: the server did not accept connections on 127.0.0.1:$PORT within ${STARTUP_TIMEOUT}s"
  fi
  log "$NAME: wstest fuzzingclient, $NCASES cases (log: $OUTDIR/wstest.log)"
  rc=0
  (cd "$OUTDIR" && timeout "$TIMEOUT" "$WSTEST" -m fuzzingclient -s "$OUTDIR/spec.json") \
    >"$OUTDIR/wstest.log" 2>&1 || rc=$?
  if [[ $rc != 0 ]]; then
    tail_log "$OUTDIR/wstest.log"
    log "$NAME: wstest exited with status $rc$([[ $rc == 124 ]] && echo " (timeout ${TIMEOUT}s)")"
    FAILED=1
  fi
  if ! kill -0 "$BG_PID" 2>/dev/null; then
    src=0
    wait "$BG_PID" || src=$?
    BG_PID=
    tail_log "$OUTDIR/server.log"
    log "$NAME: the server exited during the run (status $src)"
    FAILED=1
  fi
  stop_bg
else
  log "$NAME: starting wstest fuzzingserver on 127.0.0.1:$PORT, $NCASES cases (log: $OUTDIR/wstest.log)"
  (cd "$OUTDIR" && exec "$WSTEST" -m fuzzingserver -s "$OUTDIR/spec.json" --webport 0) \
    >"$OUTDIR/wstest.log" 2>&1 &
  BG_PID=$!
  wrc=0
  wait_port "$BG_PID" || wrc=$?
  if [[ $wrc != 0 ]]; then
    tail_log "$OUTDIR/wstest.log"
    [[ $wrc == 2 ]] && die "$NAME: wstest fuzzingserver exited before listening"
    die "$NAME: wstest fuzzingserver did not listen on 127.0.0.1:$PORT within ${STARTUP_TIMEOUT}s"
  fi
  log "$NAME: running $PROGRAM (log: $OUTDIR/client.log)"
  rc=0
  timeout "$TIMEOUT" "$PROGRAM" --runtime "$RUNTIME" --url "ws://127.0.0.1:$PORT" --agent "$AGENT" \
    >"$OUTDIR/client.log" 2>&1 || rc=$?
  if [[ $rc != 0 ]]; then
    tail_log "$OUTDIR/client.log"
    log "$NAME: the client exited with status $rc$([[ $rc == 124 ]] && echo " (timeout ${TIMEOUT}s)")"
    FAILED=1
  fi
  if ! kill -0 "$BG_PID" 2>/dev/null; then
    tail_log "$OUTDIR/wstest.log"
    log "$NAME: wstest fuzzingserver exited during the run"
    FAILED=1
  fi
  stop_bg
fi
log "$NAME: finished in $((SECONDS - start))s; report: $OUTDIR/index.html"

python3 "$SCRIPT_DIR/check.py" --mode "$MODE" --runtime "$RUNTIME" --agent "$AGENT" \
  --index "$OUTDIR/index.json" --cases "$OUTDIR/cases.json" || FAILED=1
exit "$FAILED"
