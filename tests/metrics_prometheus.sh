#!/usr/bin/env bash
# /metrics against real Prometheus tools (CTest: metrics_prometheus): the
# quickstart runs into a temporary store, `tierflow ui` serves it, then
#  1. `promtool check metrics` accepts the live exposition (exit 0: no
#     parse error and no lint problem);
#  2. a real Prometheus (scripts/prometheus.sh, loopback, 1 s scrapes)
#     scrapes it, and its query API answers tierflow_tasks with the numbers
#     the store holds.
# Waits are bounded only against hangs.
#
# Usage: metrics_prometheus.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-prom.XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "metrics_prometheus: FAIL: $*" >&2; exit 1; }
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print("|".join(map(str,r))) for r in c.execute(sys.argv[2])]' "$1" "$2"; }

"$tierflow" run "$here/examples/quickstart/pipeline.yaml" --db "$work/tierflow.db" \
  >"$work/run.out" 2>&1 || fail "quickstart run: $(cat "$work/run.out")"

"$tierflow" ui --db "$work/tierflow.db" --listen 127.0.0.1:0 >"$work/ui.out" 2>&1 &
pids+=($!)
addr=""
for _ in $(seq 300); do
  addr=$(sed -n 's|^serving the UI on http://\(.*\)/$|\1|p' "$work/ui.out")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || fail "tierflow ui did not start: $(cat "$work/ui.out")"

# 1. promtool: parse and lint.
curl -fsS "http://$addr/metrics" >"$work/metrics.txt" || fail "GET /metrics"
if ! promtool check metrics <"$work/metrics.txt" >"$work/promtool.out" 2>&1; then
  fail "promtool check metrics: $(cat "$work/promtool.out")"
fi
[ ! -s "$work/promtool.out" ] || fail "promtool printed: $(cat "$work/promtool.out")"
for name in tierflow_tasks tierflow_task_duration_seconds_bucket tierflow_queue_depth \
  tierflow_bytes_moved_total tierflow_transfer_throughput_bytes_per_second_bucket \
  tierflow_data_wait_seconds_total; do
  grep -q "^$name" "$work/metrics.txt" || fail "no $name in /metrics"
done

# 2. A real Prometheus scrapes it and answers a query with the store's numbers.
read -r prom prom_pid < <("$here/scripts/prometheus.sh" "$work/prometheus" "$addr")
pids+=("$prom_pid")
expected=$(sql "$work/tierflow.db" "SELECT COUNT(*) FROM tasks WHERE state = 'succeeded'")
expected_ingest=$(sql "$work/tierflow.db" \
  "SELECT COUNT(*) FROM tasks WHERE state = 'succeeded' AND kind = 'ingest'")
got=""
for _ in $(seq 600); do
  got=$(curl -fsS "http://$prom/api/v1/query" \
    --data-urlencode 'query=sum(tierflow_tasks{state="succeeded"})' |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")') || true
  [ -n "$got" ] && break
  sleep 0.1
done
[ -n "$got" ] || fail "Prometheus never answered tierflow_tasks: $(tail -5 "$work/prometheus/prometheus.log")"
[ "$got" = "$expected" ] || fail "sum(tierflow_tasks{state=\"succeeded\"}) = $got, the store has $expected"
got_ingest=$(curl -fsS "http://$prom/api/v1/query" \
  --data-urlencode 'query=tierflow_tasks{state="succeeded",kind="ingest"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])')
[ "$got_ingest" = "$expected_ingest" ] || fail "ingest tasks: $got_ingest, the store has $expected_ingest"
health=$(curl -fsS "http://$prom/api/v1/targets" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["activeTargets"][0]["health"])')
[ "$health" = "up" ] || fail "the scrape target is $health"
echo "metrics_prometheus: ok (promtool clean; Prometheus reads $got succeeded tasks)"
