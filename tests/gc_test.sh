#!/usr/bin/env bash
# `tierflow gc` through the real binary (CTest: gc_cli), on real runs of
# small pipelines placed on two posix tiers in a temp dir:
# - bad values fail naming them, and a gc with no rule says which to give;
# - --dry-run reports what gc then does, and changes no file and no byte of
#   the store;
# - --keep-last is per pipeline; the data of the other runs goes from both
#   tiers and the state folder, with the bytes per tier reported equal to
#   what the tiers lost (sizes of the files, measured with find);
# - a kept run's cache entry (its `cached` attempt reuses an older run's
#   attempt) keeps those files, and a new run still reuses them;
# - nothing on an archive tier is deleted;
# - gc while a run is live leaves that run, and the runs of its pipeline it
#   may reuse, alone; the live run then finishes with its files there;
# - gc killed with kill -9 after recording its intent loses nothing that
#   is referenced, and a second gc finishes the job;
# - --older-than takes only runs that ended long enough ago.
#
# Usage: gc_test.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$(realpath "$1")"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-gc.XXXXXX")"
bg_pids=()
cleanup() {
  for pid in "${bg_pids[@]}"; do kill -9 "$pid" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
[ -z "${GC_TEST_KEEP:-}" ] || trap - EXIT
fail() { echo "gc_test: FAIL: $*" >&2; exit 1; }
cd "$work"
mkdir fast slow vault

cat > tiers.yaml <<YAML
tiers:
  fast:
    adapter: posix
    root: $work/fast
    durability: node
    profile: {seq_read_mb_s: 2000, seq_write_mb_s: 2000, rand_read_iops: 100000, latency_us: 10}
  slow:
    adapter: posix
    root: $work/slow
    durability: durable
    profile: {seq_read_mb_s: 100, seq_write_mb_s: 100, rand_read_iops: 1000, latency_us: 100}
YAML
cat > archive-tiers.yaml <<YAML
tiers:
  fast:
    adapter: posix
    root: $work/fast
    durability: node
  vault:
    adapter: posix
    root: $work/vault
    durability: archive
YAML
# make is cached (a later run reuses it), fresh never is.
cat > alpha.yaml <<'YAML'
name: alpha
stages:
  make:
    outputs: {data: {size: 1MiB, durability: durable}}
    run: echo making the data; head -c 300000 /dev/urandom > "$TIERFLOW_OUTPUT_DATA"
  fresh:
    cache: false
    inputs: {data: make.data}
    outputs: {copy: 1MiB}
    run: echo copying; cat "$TIERFLOW_INPUT_DATA" > "$TIERFLOW_OUTPUT_COPY"; head -c 7000 /dev/urandom >> "$TIERFLOW_OUTPUT_COPY"
YAML
sed 's/^name: alpha/name: beta/' alpha.yaml > beta.yaml
# first is cached; wait waits for a file, so its run stays live.
cat > slow.yaml <<'YAML'
name: slowpoke
stages:
  first:
    outputs: {data: {size: 1MiB, durability: durable}}
    run: head -c 100000 /dev/urandom > "$TIERFLOW_OUTPUT_DATA"
  wait:
    cache: false
    inputs: {data: first.data}
    outputs: {copy: 1MiB}
    run: while [ ! -e "$GC_TEST_GO" ]; do sleep 0.1; done; cat "$TIERFLOW_INPUT_DATA" > "$TIERFLOW_OUTPUT_COPY"
YAML
cat > gamma.yaml <<'YAML'
name: gamma
stages:
  keep:
    outputs: {record: {size: 1KiB, durability: archive}}
    run: echo kept forever > "$TIERFLOW_OUTPUT_RECORD"
YAML

db="$work/state/tierflow.db"
run() {  # FILE TIERS DB: runs it, prints the run id
  local out
  out="$(GC_TEST_GO="$work/go" "$tierflow" run "$1" --tiers "$2" --db "$3" --progress plain 2>&1)" ||
    fail "run $1: $out"
  sed -n 's/^run \([a-z]*-[0-9a-f]*\) succeeded.*/\1/p' <<< "$out" | head -1
}
# ROOT...: the sum of the sizes of the files under runs/ of each root (a
# run's lock is not data: gc rewrites it while it holds it)
sizes() {
  local total=0 root
  for root in "$@"; do
    if [ -d "$root/runs" ]; then
      total=$((total + $(find "$root/runs" -type f ! -path "$root/runs/*/lock" -printf '%s\n' | awk '{s += $1} END {print s + 0}')))
    fi
  done
  echo "$total"
}
json() {  # FILE EXPR: a python expression over the JSON `j` in FILE
  python3 -c "import json, sys; j = json.load(open(sys.argv[1])); print($2)" "$1"
}
sql() {  # DB SQL: one value, read-only
  python3 -c "import sqlite3, sys; c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True); r = c.execute(sys.argv[2]).fetchone(); print('' if r is None else r[0])" "$1" "$2"
}

# --- bad values
if "$tierflow" gc --db "$db" > out 2> err; then fail "gc without a rule succeeded"; fi
grep -qF "gc needs a rule: --keep-last N (runs kept per pipeline) and/or --older-than D" err ||
  fail "no-rule message: $(cat err)"
if "$tierflow" gc --older-than 7x --db "$db" > out 2> err; then fail "--older-than 7x accepted"; fi
grep -qF "tierflow: --older-than '7x': expected a whole number and a unit, d, h, m or s" err ||
  fail "bad age message: $(cat err)"
set +e
"$tierflow" gc --keep-last -1 --db "$db" > out 2> err
code=$?
set -e
[ "$code" = 2 ] || fail "--keep-last -1: exit $code, $(cat err)"

# --- three runs of alpha (r2 and r3 reuse r1's make), one of beta
r1="$(run alpha.yaml tiers.yaml "$db")"
r2="$(run alpha.yaml tiers.yaml "$db")"
r3="$(run alpha.yaml tiers.yaml "$db")"
b1="$(run beta.yaml tiers.yaml "$db")"
[ -n "$r1" ] && [ -n "$r3" ] && [ -n "$b1" ] || fail "run ids: '$r1' '$r2' '$r3' '$b1'"
r1_make="$(sql "$db" "SELECT id FROM attempts WHERE run_id = '$r1' AND task_id = 'make'")"
[ "$(sql "$db" "SELECT cached_from FROM attempts WHERE run_id = '$r3' AND task_id = 'make'")" = "$r1_make" ] ||
  fail "r3's make does not reuse r1's"
mapfile -t r1_make_files < <(sql "$db" "SELECT group_concat(c.uri, char(10)) FROM artifact_copies c JOIN artifacts a ON a.id = c.artifact_id WHERE a.run_id = '$r1' AND a.task_id = 'make' AND c.state = 'present'")
[ "${#r1_make_files[@]}" -ge 1 ] && [ -f "${r1_make_files[0]}" ] || fail "r1's make copies: ${r1_make_files[*]}"
r1_fresh="$(sql "$db" "SELECT c.uri FROM artifact_copies c JOIN artifacts a ON a.id = c.artifact_id WHERE a.run_id = '$r1' AND a.task_id = 'fresh' AND c.state = 'present'")"
[ -f "$r1_fresh" ] || fail "r1's fresh copy '$r1_fresh' is not there"

# --- dry run: the report, and nothing changed
# Every file and size, the store's bytes; its -wal and -shm (SQLite's
# shared memory, which a reader may create) are checked apart: no WAL
# content means no change.
snapshot() { (find fast slow state -type f -printf '%p %s\n' | grep -v 'tierflow.db-\(shm\|wal\) ' | sort; md5sum state/tierflow.db); }
sqlite3_checkpoint() { python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA wal_checkpoint(TRUNCATE)')" "$db"; }
sqlite3_checkpoint
snapshot > before
"$tierflow" gc --keep-last 1 --dry-run --db "$db" -o json > dry.json || fail "dry run: $(cat dry.json)"
snapshot > after
diff before after > /dev/null || fail "the dry run changed files: $(diff before after)"
[ ! -s state/tierflow.db-wal ] || fail "the dry run wrote to the store's WAL"
[ "$(json dry.json 'sorted(r["run"] for r in j["collected"])')" = "$(python3 -c "print(sorted(['$r1', '$r2']))")" ] ||
  fail "dry run collects: $(cat dry.json)"

# --- keep-last 1 per pipeline
fast_before="$(sizes fast)"; slow_before="$(sizes slow)"; state_before="$(sizes state)"
"$tierflow" gc --keep-last 1 --db "$db" -o json > gc.json || fail "gc: $(cat gc.json)"
fast_freed=$((fast_before - $(sizes fast)))
slow_freed=$((slow_before - $(sizes slow)))
state_freed=$((state_before - $(sizes state)))
[ "$(json gc.json 'sorted(r["run"] for r in j["collected"])')" = "$(python3 -c "print(sorted(['$r1', '$r2']))")" ] ||
  fail "gc collects: $(cat gc.json)"
[ "$(json gc.json 'j["bytes_freed"]')" = "$(json dry.json 'j["bytes_freed"]')" ] ||
  fail "dry run and gc disagree: $(cat dry.json) $(cat gc.json)"
[ "$(json gc.json 'j["bytes_freed"].get("fast", 0)')" = "$fast_freed" ] ||
  fail "fast: reported $(json gc.json 'j["bytes_freed"]'), the tier lost $fast_freed"
[ "$(json gc.json 'j["bytes_freed"].get("slow", 0)')" = "$slow_freed" ] ||
  fail "slow: reported $(json gc.json 'j["bytes_freed"]'), the tier lost $slow_freed"
[ "$(json gc.json 'j["bytes_freed"].get("state", 0)')" = "$state_freed" ] ||
  fail "state: reported $(json gc.json 'j["bytes_freed"]'), the folder lost $state_freed"
[ "$slow_freed" -gt 0 ] && [ "$state_freed" -gt 0 ] || fail "nothing freed: $(cat gc.json)"
[ ! -e "$r1_fresh" ] || fail "r1's fresh copy is still there"
for file in "${r1_make_files[@]}"; do
  [ -f "$file" ] || fail "r1's make copy $file, which r3 reuses, was deleted"
done
for root in fast slow state; do
  [ ! -e "$root/runs/$r2" ] || fail "$root/runs/$r2 is still there: $(find "$root/runs/$r2")"
  [ -e "$root/runs/$r3" ] || [ "$root" = fast ] || fail "the kept run's $root/runs/$r3 is gone"
done
[ -d "state/runs/$b1" ] || fail "beta's only run lost its folder"
[ "$(sql "$db" "SELECT state FROM gc_runs WHERE run_id = '$r2'")" = done ] || fail "r2 not recorded done"
[ "$(sql "$db" "SELECT count(*) FROM runs WHERE id = '$r2'")" = 1 ] || fail "r2's row was deleted"
[ "$(sql "$db" "SELECT count(*) FROM artifact_copies c JOIN artifacts a ON a.id = c.artifact_id WHERE a.run_id = '$r2' AND c.state = 'present'")" = 0 ] ||
  fail "r2 still has copies recorded present"
"$tierflow" runs --db "$db" > runs.out
grep -q "^$r2 .*succeeded, gc'd" runs.out || fail "r2 is not listed as gc'd: $(cat runs.out)"
grep -q "^$r3 .*succeeded  " runs.out || fail "r3 is not listed as kept: $(cat runs.out)"
# The cache entry r3 uses still works: a new run reuses r1's make.
r4="$(run alpha.yaml tiers.yaml "$db")"
[ "$(sql "$db" "SELECT state FROM attempts WHERE run_id = '$r4' AND task_id = 'make'")" = cached ] ||
  fail "r4's make did not reuse the kept cache entry"

# --- an archive tier is never touched
adb="$work/archive-state/tierflow.db"
g1="$(run gamma.yaml archive-tiers.yaml "$adb")"
run gamma.yaml archive-tiers.yaml "$adb" > /dev/null
vault_files="$(find vault -type f | sort)"
[ -n "$vault_files" ] || fail "nothing was written on the archive tier"
"$tierflow" gc --keep-last 0 --db "$adb" > archive.out || fail "gc: $(cat archive.out)"
grep -qF "collected $g1" archive.out || fail "gamma's run not collected: $(cat archive.out)"
grep -qF "vault: archive tier, nothing deleted" archive.out || fail "archive not reported: $(cat archive.out)"
[ "$(find vault -type f | sort)" = "$vault_files" ] || fail "files on the archive tier changed"

# --- gc while a run is live
touch "$work/go"; s1="$(run slow.yaml tiers.yaml "$db")"; rm "$work/go"
(GC_TEST_GO="$work/go" "$tierflow" run slow.yaml --tiers tiers.yaml --db "$db" --progress plain > live.out 2>&1) &
live_pid=$!
bg_pids+=("$live_pid")
for _ in $(seq 1 300); do
  live="$(sql "$db" "SELECT id FROM runs WHERE pipeline_name = 'slowpoke' AND state = 'running'" 2> /dev/null || true)"
  [ -n "$live" ] && [ "$(sql "$db" "SELECT state FROM tasks WHERE run_id = '$live' AND id = 'wait'")" = running ] && break
  sleep 0.1
done
[ -n "${live:-}" ] || fail "the live run did not start: $(cat live.out)"
"$tierflow" gc --keep-last 0 --db "$db" > live-gc.out || fail "gc during a run: $(cat live-gc.out)"
grep -qF "kept $live: not finished" live-gc.out || fail "live run: $(cat live-gc.out)"
grep -qF "kept $s1: run $live of pipeline slowpoke is not finished" live-gc.out ||
  fail "the live run's pipeline: $(cat live-gc.out)"
grep -qF "collected $r3" live-gc.out || fail "other pipelines' runs were not collected: $(cat live-gc.out)"
touch "$work/go"
wait "$live_pid" || fail "the live run failed after gc: $(cat live.out)"
grep -q "^run $live succeeded" live.out || fail "live run: $(cat live.out)"
live_copy="$(sql "$db" "SELECT c.uri FROM artifact_copies c JOIN artifacts a ON a.id = c.artifact_id WHERE a.run_id = '$live' AND a.task_id = 'wait' AND c.state = 'present'")"
[ -f "$live_copy" ] || fail "the live run's output '$live_copy' is not there"

# --- kill -9 after the intent, then a second gc
kdb="$work/kill-state/tierflow.db"
k1="$(run alpha.yaml tiers.yaml "$kdb")"
k2="$(run alpha.yaml tiers.yaml "$kdb")"
k1_make="$(sql "$kdb" "SELECT c.uri FROM artifact_copies c JOIN artifacts a ON a.id = c.artifact_id WHERE a.run_id = '$k1' AND a.task_id = 'make' AND c.state = 'present' LIMIT 1")"
k1_fresh="$(sql "$kdb" "SELECT c.uri FROM artifact_copies c JOIN artifacts a ON a.id = c.artifact_id WHERE a.run_id = '$k1' AND a.task_id = 'fresh' AND c.state = 'present' LIMIT 1")"
TIERFLOW_TEST_GC_PAUSE_MS=60000 "$tierflow" gc --keep-last 1 --db "$kdb" > kill.out 2>&1 &
gc_pid=$!
bg_pids+=("$gc_pid")
for _ in $(seq 1 300); do
  [ "$(sql "$kdb" "SELECT state FROM gc_runs WHERE run_id = '$k1'" 2> /dev/null || true)" = deleting ] && break
  sleep 0.1
done
[ "$(sql "$kdb" "SELECT state FROM gc_runs WHERE run_id = '$k1'")" = deleting ] || fail "gc recorded no intent"
kill -9 "$gc_pid"
wait "$gc_pid" 2> /dev/null || true
[ -f "$k1_make" ] && [ -f "$k1_fresh" ] || fail "files went before the intent's pause"
[ "$(sql "$kdb" "SELECT count(*) FROM artifact_copies WHERE uri = '$k1_fresh' AND state = 'present'")" = 0 ] ||
  fail "k1's fresh copy is still recorded present after the intent"
[ "$(sql "$kdb" "SELECT count(*) FROM artifact_copies WHERE uri = '$k1_make' AND state = 'present'")" = 1 ] ||
  fail "k1's make copy, which k2 reuses, is no longer recorded present"
"$tierflow" gc --keep-last 1 --db "$kdb" > kill2.out || fail "second gc: $(cat kill2.out)"
grep -qF "finished $k1: its data was being deleted by a gc that stopped" kill2.out ||
  fail "second gc: $(cat kill2.out)"
[ "$(sql "$kdb" "SELECT state FROM gc_runs WHERE run_id = '$k1'")" = done ] || fail "k1 not done"
[ ! -e "$k1_fresh" ] || fail "k1's fresh copy survived the second gc"
[ -f "$k1_make" ] || fail "k1's make copy, which k2 reuses, was lost"
k3="$(run alpha.yaml tiers.yaml "$kdb")"
[ "$(sql "$kdb" "SELECT state FROM attempts WHERE run_id = '$k3' AND task_id = 'make'")" = cached ] ||
  fail "k3 did not reuse the cache entry kept through the kill"
[ -n "$k2" ] || fail "k2"

# --- older-than
"$tierflow" gc --older-than 1h --db "$kdb" > old1.out || fail "gc: $(cat old1.out)"
grep -q "^collected" old1.out && fail "--older-than 1h collected recent runs: $(cat old1.out)"
sleep 2
"$tierflow" gc --older-than 1s --db "$kdb" > old2.out || fail "gc: $(cat old2.out)"
grep -qF "collected $k2" old2.out || fail "--older-than 1s: $(cat old2.out)"
echo "gc_test: ok"
