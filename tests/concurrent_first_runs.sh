#!/usr/bin/env bash
# Two first runs at once (CTest: concurrent_first_runs): ten rounds of two
# `tierflow run` started together on a database that does not exist yet.
# Both must succeed every time: the database is created whole under a
# temporary name and linked into place, so neither sees it half made
# (before: the loser failed 9 times in 10 with "schema version 0" or
# "database is locked").
#
# Usage: concurrent_first_runs.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$(realpath "$1")"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-first-runs.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "concurrent_first_runs: FAIL: $*" >&2; exit 1; }
mkdir "$work/tier"
cat > "$work/p.yaml" <<'YAML'
name: first
stages:
  one:
    run: "true"
YAML
cat > "$work/tiers.yaml" <<YAML
tiers:
  disk:
    adapter: posix
    root: $work/tier
    durability: durable
YAML
start=$SECONDS
for round in $(seq 1 10); do
  db="$work/state-$round/t.db"
  pids=()
  for side in a b; do
    (cd "$work" && exec "$tierflow" run p.yaml --tiers tiers.yaml --db "$db" -q \
        > "$work/$round-$side.out" 2>&1) &
    pids+=($!)
  done
  for i in 0 1; do
    side=$([ "$i" = 0 ] && echo a || echo b)
    wait "${pids[$i]}" || fail "round $round, run $side: exit $?: $(cat "$work/$round-$side.out")"
  done
  runs="$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM runs WHERE state = ?", ("succeeded",)).fetchone()[0])' "$db")"
  [ "$runs" = 2 ] || fail "round $round: $runs runs succeeded in the store, not 2"
  leftover="$(find "$work/state-$round" -maxdepth 1 -name 't.db.creating-*')"
  [ -z "$leftover" ] || fail "round $round: temporary databases left: $leftover"
done
# An empty database (schema version 0: what an older tierflow killed while
# it created one left behind) is made whole by the next run, not refused.
db="$work/state-empty/t.db"
mkdir -p "$work/state-empty"
python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("PRAGMA journal_mode=wal"); c.close()' "$db"
(cd "$work" && "$tierflow" run p.yaml --tiers tiers.yaml --db "$db" -q > "$work/empty.out" 2>&1) ||
  fail "a run on an empty database: $(cat "$work/empty.out")"
echo "concurrent_first_runs: ok (10 rounds, 20 runs, an empty database; $((SECONDS - start))s)"
