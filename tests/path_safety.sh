#!/usr/bin/env bash
# Path safety (CTest: path_safety): nothing tierflow itself writes or
# deletes ever lands outside a tier root, whatever symlinks are planted
# beneath it (docs/tiers.md "Path safety"). The five attacks that once
# worked, through the real binary, each on temporary tiers of its own:
#   a. a `runs` symlink in a tier root: outputs would land outside it;
#   b. an artifact's folder made a symlink before `resume`: publishing
#      would overwrite a file outside, and the run "succeed";
#   c. the run's folder made a symlink before `resume`: the end-of-run
#      cleanup would delete a folder outside;
#   d. a consumer swaps the folder of its working copy for a symlink while
#      it runs: evicting the copy would delete the files it points to;
#   e. the default RAM folder created first by someone else, with a
#      symlink inside (TIERFLOW_RAM_ROOT points it at a temporary folder:
#      the real /dev/shm/tierflow-UID is never touched).
# Each checks that the canaries outside are unchanged (content and the
# listing of the folder that holds them) and that the run fails, or is
# refused, with an error naming the path.
#
# Usage: path_safety.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$1"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-path-safety.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
fail() { echo "path_safety: FAIL: $*" >&2; exit 1; }
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print("|".join(map(str,r))) for r in c.execute(sys.argv[2])]' "$1" "$2"; }
# Everything under a folder, with each file's hash: the canaries' fingerprint.
fingerprint() { (cd "$1" && find . -printf '%y %p %l\n' | sort && find . -type f -exec sha256sum {} + | sort); }

# One scenario's folder: tiers file (posix tiers fast, volatile, and slow,
# durable, under $dir), an outside folder with canaries, and its database.
setup() {
  dir="$work/$1"
  mkdir -p "$dir/outside"
  echo "canary of $1" > "$dir/outside/canary"
  cat > "$dir/tiers.yaml" <<'YAML'
tiers:
  fast:
    adapter: posix
    root: fast
    durability: volatile
    profile: {seq_read_mb_s: 20000, seq_write_mb_s: 20000, rand_read_iops: 1000000, latency_us: 1}
  slow:
    adapter: posix
    root: slow
    durability: durable
    profile: {seq_read_mb_s: 100, seq_write_mb_s: 100, rand_read_iops: 100, latency_us: 10000}
YAML
  mkdir -p "$dir/fast" "$dir/slow"
  db="$dir/state/tierflow.db"
}
# Runs tierflow with the scenario's tiers and database; its output in $dir/out.
run_tf() {
  set +e
  "$tierflow" "$@" --tiers "$dir/tiers.yaml" --db "$db" --progress plain > "$dir/out" 2>&1
  status=$?
  set -e
}
resume_tf() {
  set +e
  "$tierflow" resume "$1" --db "$db" > "$dir/out" 2>&1
  status=$?
  set -e
}
# The run's output plus every recorded message (attempts, events, run).
messages() {
  cat "$dir/out"
  sql "$db" "SELECT message FROM attempts UNION ALL SELECT message FROM runs UNION ALL SELECT message FROM events" 2>/dev/null || true
}
expect_failed_naming() {  # scenario, path fragment
  [ "$status" -ne 0 ] || fail "$1: the run exited 0: $(cat "$dir/out")"
  messages | grep -qF -- "$2" || fail "$1: no error names '$2': $(messages)"
  messages | grep -q "symlink" || fail "$1: no error says 'symlink': $(messages)"
}

# A pipeline whose `make` writes a file output, failing while $dir/fail exists.
cat > "$work/make.yaml" <<'YAML'
name: safety
stages:
  make:
    run: |
      if [ -e "$FAIL_FLAG" ]; then echo "failing on purpose" >&2; exit 1; fi
      echo "written by make" > "$TIERFLOW_OUTPUT_DATA"
    outputs: [data]
    retries: 0
YAML

echo "== a. a runs symlink in a tier root"
setup a
ln -s "$dir/outside" "$dir/slow/runs"
before="$(fingerprint "$dir/outside")"
FAIL_FLAG=/nonexistent run_tf run "$work/make.yaml"
expect_failed_naming a "$dir/slow"
[ "$(fingerprint "$dir/outside")" = "$before" ] || fail "a: something changed outside: $(ls -laR "$dir/outside")"

echo "== b. an artifact folder made a symlink before resume"
setup b
touch "$dir/fail"
FAIL_FLAG="$dir/fail" run_tf run "$work/make.yaml"
[ "$status" -ne 0 ] || fail "b: the first run should fail"
run=$(sql "$db" "SELECT id FROM runs")
mkdir -p "$dir/slow/runs/$run/artifacts"
echo "canary named like the output" > "$dir/outside/data"
ln -s "$dir/outside" "$dir/slow/runs/$run/artifacts/make"
before="$(fingerprint "$dir/outside")"
rm "$dir/fail"
FAIL_FLAG="$dir/fail" resume_tf "$run"
expect_failed_naming b "runs/$run/artifacts/make"
[ "$(fingerprint "$dir/outside")" = "$before" ] || fail "b: a file outside was overwritten: $(cat "$dir/outside/data")"
[ "$(sql "$db" "SELECT state FROM runs")" != succeeded ] || fail "b: the run is recorded succeeded"

echo "== c. the run folder made a symlink before resume"
setup c
touch "$dir/fail"
FAIL_FLAG="$dir/fail" run_tf run "$work/make.yaml"
[ "$status" -ne 0 ] || fail "c: the first run should fail"
run=$(sql "$db" "SELECT id FROM runs")
mkdir -p "$dir/outside/run/staging/keep"
echo "canary in a staging folder outside" > "$dir/outside/run/staging/keep/file"
mv "$dir/slow/runs/$run" "$dir/slow/runs/moved-away"
ln -s "$dir/outside/run" "$dir/slow/runs/$run"
before="$(fingerprint "$dir/outside")"
rm "$dir/fail"
FAIL_FLAG="$dir/fail" resume_tf "$run"
expect_failed_naming c "runs/$run"
[ "$(fingerprint "$dir/outside")" = "$before" ] || fail "c: something outside changed: $(ls -laR "$dir/outside")"

echo "== d. a working copy's folder swapped for a symlink while its reader runs"
setup d
mkdir -p "$dir/outside/victim/data"
for i in 1 2 3; do echo "file $i outside" > "$dir/outside/victim/data/$i"; done
cat > "$dir/swap.yaml" <<'YAML'
name: swap
stages:
  make:
    run: |
      mkdir -p "$TIERFLOW_OUTPUT_DATA"
      for i in 1 2 3; do echo "artifact file $i" > "$TIERFLOW_OUTPUT_DATA/$i"; done
    outputs: [data]
  use:
    inputs: {data: make.data}
    io: {read: random, read_passes: 8}
    run: |
      cat "$TIERFLOW_INPUT_DATA/1"
      # The hostile reader: its working copy's folder becomes a symlink
      # to a folder outside that holds files of the same names.
      folder="$(dirname "$TIERFLOW_INPUT_DATA")"
      mv "$folder" "$folder.moved"
      ln -s "$OUTSIDE/victim" "$folder"
YAML
before="$(fingerprint "$dir/outside")"
OUTSIDE="$dir/outside" run_tf run "$dir/swap.yaml"
grep -qE "^use +[a-z]+ +1 +1 " "$dir/out" || fail "d: the reader did not run (its summary row): $(cat "$dir/out")"
[ -d "$dir/fast/runs" ] || fail "d: no working copy was placed on tier fast: $(cat "$dir/out")"
expect_failed_naming d "artifacts/make"
[ "$(fingerprint "$dir/outside")" = "$before" ] || fail "d: eviction deleted files outside: $(ls -laR "$dir/outside")"

echo "== e. the default RAM folder created first by someone else"
setup e
ram="$dir/ram"
mkdir -p "$ram"
chmod 0777 "$ram"
ln -s "$dir/outside" "$ram/runs"
before="$(fingerprint "$dir/outside")"
set +e
FAIL_FLAG=/nonexistent TIERFLOW_RAM_ROOT="$ram" "$tierflow" run "$work/make.yaml" --db "$db" \
  --progress plain > "$dir/out" 2>&1
status=$?
set -e
[ "$status" -ne 0 ] || fail "e: a run on a RAM folder with mode 0777 started: $(cat "$dir/out")"
grep -qF "refusing the tier root $ram: others may write in it (owner uid $(id -u), mode 0777)" "$dir/out" ||
  fail "e: the error does not name the folder, owner and mode: $(cat "$dir/out")"
[ "$(fingerprint "$dir/outside")" = "$before" ] || fail "e: something changed outside"
# Owned by another user (nobody), mode 0700: refused too.
if [ "$(id -u)" = 0 ]; then
  chmod 0700 "$ram"
  chown 65534:65534 "$ram"
  set +e
  FAIL_FLAG=/nonexistent TIERFLOW_RAM_ROOT="$ram" "$tierflow" run "$work/make.yaml" --db "$db" \
    --progress plain > "$dir/out" 2>&1
  status=$?
  set -e
  [ "$status" -ne 0 ] || fail "e: a run on a RAM folder of another user started"
  grep -qF "refusing the tier root $ram: another user owns it (owner uid 65534, mode 0700)" "$dir/out" ||
    fail "e: the error does not name the owner: $(cat "$dir/out")"
  chown -h "$(id -u)" "$ram"
else
  echo "(not root: the other-owner case is covered by storage_test)"
fi
# Created fresh: mode 0700, and the run succeeds.
rm -rf "$ram"
FAIL_FLAG=/nonexistent TIERFLOW_RAM_ROOT="$ram" "$tierflow" run "$work/make.yaml" --db "$db" \
  --progress plain > "$dir/out" 2>&1 || fail "e: a run with a fresh RAM folder failed: $(cat "$dir/out")"
[ "$(stat -c %a "$ram")" = 700 ] || fail "e: the RAM folder was created with mode $(stat -c %a "$ram")"
[ "$(fingerprint "$dir/outside")" = "$before" ] || fail "e: something changed outside"

echo "path_safety: ok ($((SECONDS - start)) s)"
