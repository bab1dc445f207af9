#!/usr/bin/env bash
# Starts Debian's Prometheus on loopback, scraping one target every second,
# with everything in DIR (config, TSDB, log). Prints "ADDRESS PID" once it
# answers /-/ready; the caller stops it by that PID.
#
# Usage: scripts/prometheus.sh DIR TARGET_HOST:PORT [METRICS_PATH]
set -euo pipefail
dir="$1"
target="$2"
path="${3:-/metrics}"
mkdir -p "$dir/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$dir/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tierflow
    metrics_path: $path
    static_configs:
      - targets: ["$target"]
YAML
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --web.listen-address="127.0.0.1:$port" >"$dir/prometheus.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  if curl -fs "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then
    echo "127.0.0.1:$port $pid"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
echo "prometheus.sh: Prometheus did not start: $(tail -5 "$dir/prometheus.log")" >&2
kill "$pid" 2>/dev/null || true
exit 1
