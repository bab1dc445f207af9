# Helpers shared by the scripts that start test servers on loopback
# (scripts/swift.sh, scripts/slurm.sh); sourced, not run.

# Whether PID still runs (an exited one may linger as a zombie until its
# new parent reaps it).
alive() {
  local state
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Prints N ports that are free now (held open together, so all distinct).
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}

# SIGTERM to PID, and SIGKILL if it still runs SECONDS (default 5) later.
# Fails when it took SIGKILL.
terminate() {
  local pid=$1 ticks=$((${2:-5} * 20))
  kill -TERM "$pid" 2>/dev/null || true
  while [ $ticks -gt 0 ] && alive "$pid"; do
    sleep 0.05
    ticks=$((ticks - 1))
  done
  alive "$pid" || return 0
  kill -KILL "$pid" 2>/dev/null || true
  return 1
}
