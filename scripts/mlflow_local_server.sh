#!/usr/bin/env bash
# A real MLflow tracking server on this machine (UI and REST API), to try and test `logger=mlflow` without a
# team's server: runs and registered models in SQLite, artifacts (figures, tables, checkpoints) in a local
# folder that the server serves, so clients upload through it and need no access to the folder.
#
#   scripts/mlflow_local_server.sh start     # install MLflow if missing, start the server, wait until it answers
#   scripts/mlflow_local_server.sh status    # does it answer? its URL
#   scripts/mlflow_local_server.sh stop      # stop it (the runs stay in its folder for the next start)
#
# Then `python -m garbage_lit.train logger=[tensorboard,mlflow]` logs there (its default tracking URI) and
# http://127.0.0.1:5000 shows the runs. Needs no root: the server is a separate MLflow install (full `mlflow`, with
# its UI) in its own virtualenv under the state folder, apart from the project's client (`garbage-lit[mlflow]`).
#   MLFLOW_LOCAL_DIR    state folder (default ~/.local/share/garbage-lit/mlflow): venv/, mlflow.db, artifacts/, logs
#   MLFLOW_LOCAL_PORT   port on 127.0.0.1 (default 5000)
#   MLFLOW_LOCAL_SPEC   what pip installs into venv/ (default "mlflow>=3.1,<4")
set -euo pipefail

STATE_DIR=${MLFLOW_LOCAL_DIR:-${HOME:-/root}/.local/share/garbage-lit/mlflow}
PORT=${MLFLOW_LOCAL_PORT:-5000}
SPEC=${MLFLOW_LOCAL_SPEC:-mlflow>=3.1,<4}
WAIT_SECONDS=${MLFLOW_LOCAL_WAIT_SECONDS:-120}
URL="http://127.0.0.1:$PORT"
VENV=$STATE_DIR/venv
PID_FILE=$STATE_DIR/server.pid
LOG_FILE=$STATE_DIR/server.log

log() { echo "mlflow_local_server: $*" >&2; }

answers() {  # does an MLflow server answer on $URL? (python, not curl: a fresh Debian machine may lack curl)
    python3 - "$URL/health" <<'EOF' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=3) as response:
    sys.exit(response.status != 200)
EOF
}

running() {  # the pid file's process (the server's process group leader) is alive
    local pid
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

install_mlflow() {
    if [ -x "$VENV/bin/mlflow" ] && "$VENV/bin/python" -c "import mlflow.server" 2>/dev/null; then
        return
    fi
    log "installing $SPEC into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "$SPEC"
}

start() {
    if answers; then
        log "a server already answers at $URL"
        return
    fi
    if running; then
        log "the server ($(cat "$PID_FILE")) runs but does not answer at $URL; see $LOG_FILE"
        exit 1
    fi
    mkdir -p "$STATE_DIR/artifacts"
    install_mlflow
    # One worker: SQLite takes one writer at a time. No job runner: its GenAI job queue starts seven worker
    # processes that tracking has no use for. setsid: its own process group, which stop ends whole.
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$PORT" --workers 1 \
        --backend-store-uri "sqlite:///$STATE_DIR/mlflow.db" \
        --artifacts-destination "$STATE_DIR/artifacts" >"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    local deadline=$((SECONDS + WAIT_SECONDS))
    while [ $SECONDS -lt $deadline ]; do
        if answers; then
            log "up: $URL (runs in $STATE_DIR/mlflow.db, artifacts in $STATE_DIR/artifacts, log $LOG_FILE)"
            return
        fi
        if ! running; then
            break
        fi
        sleep 1
    done
    log "the server did not answer at $URL within ${WAIT_SECONDS}s; its log $LOG_FILE ends:"
    tail -n 20 "$LOG_FILE" >&2 || true
    stop
    exit 1
}

stop() {
    local pid
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -- "-$pid" 2>/dev/null || kill "$pid"
        for _ in $(seq 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "the server ($pid) did not stop; sending SIGKILL"
            kill -9 -- "-$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status)
        if answers; then echo "MLflow tracking server: $URL"; else echo "no MLflow tracking server at $URL"; exit 1; fi ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
