#!/usr/bin/env bash
# `make stop`: end a detached `make run` as Ctrl-C would. The supervisor (supervisor.pid) gets SIGTERM and
# is waited for: it stops the services (they drain), then the sandbox, then the database, and removes
# their pid files. Whatever pid file is left after it (a crashed run's leftovers) gets SIGTERM here, the
# services first and, once they have exited, the database (mongo.pid) last: a service draining its
# in-flight messages still has its database. Waits at most STOP_WAIT_S (default DRAIN_TIMEOUT_S + 20 s)
# for each of the two; never SIGKILL (the next `make run` stops leftovers itself).
set -u
run="${LOCAL_VAR_DIR:-var}/run"
wait_s="${STOP_WAIT_S:-$((${DRAIN_TIMEOUT_S:-30} + 20))}"

# Alive and not a zombie (an exited child its parent has not reaped yet counts as gone).
alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

wait_gone() {
  local deadline=$((SECONDS + wait_s)) pid
  for pid in "$@"; do
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  done
}

# Sends SIGTERM to each pid file given, removes it, and prints the pids signalled.
term() {
  local f pid
  for f in "$@"; do
    [ -f "$f" ] || continue
    pid="$(cat "$f" 2>/dev/null)"
    rm -f "$f"
    case "$pid" in '' | *[!0-9]*) continue ;; esac
    kill "$pid" 2>/dev/null && echo "$pid"
  done
}

[ -d "$run" ] || exit 0
# shellcheck disable=SC2046
wait_gone $(term "$run/supervisor.pid")
services=()
for f in "$run"/*.pid; do
  case "$f" in "$run/mongo.pid" | "$run/supervisor.pid") ;; *) services+=("$f") ;; esac
done
# shellcheck disable=SC2046
wait_gone $(term "${services[@]}")
# shellcheck disable=SC2046
wait_gone $(term "$run/mongo.pid")
exit 0
