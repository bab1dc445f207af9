#!/usr/bin/env bash
# Resources on one machine (CTest: local_resources; docs/running.md
# "Resources on one machine"): `tierflow run` honours each stage's
# `resources: {cpus, memory, gpus}` as a budget, with fake GPU counts
# (--gpus N, CUDA_VISIBLE_DEVICES) and real tasks that record when they ran
# and which devices they saw:
#   a. two 1-GPU tasks on a 1-GPU budget never overlap (--slots 4);
#   b. on 2 GPUs (--gpus 2) they run side by side, each on its own device;
#   c. CUDA_VISIBLE_DEVICES=3,5: those devices, side by side, distinct; a
#      task without GPUs sees CUDA_VISIBLE_DEVICES empty; the `resources`
#      event records the assignment;
#   d. 2-cpu tasks with --cpus 2 --slots 4 run one at a time;
#   e. 1 GiB tasks with --memory 1GiB --slots 4 run one at a time;
#   f. a 4-GPU stage on a 2-GPU budget is refused, naming the stage and
#      the resource, non-zero exit, no run recorded; resume keeps the rules;
#   g. a 2-cpu task is not starved by a stream of 1-cpu ones (--cpus 2).
#
# Usage: local_resources_test.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$(realpath "$1")"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-local-resources.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "local_resources: FAIL: $*" >&2; exit 1; }
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print("|".join(map(str,r))) for r in c.execute(sys.argv[2])]' "$1" "$2"; }
export TIERFLOW_RAM_ROOT="$work/ram"
mkdir -p "$work/tier"
cat > "$work/tiers.yaml" <<YAML
tiers:
  disk:
    adapter: posix
    root: $work/tier
    durability: durable
YAML

# A task's record: "<start ns> <end ns> [<CUDA_VISIBLE_DEVICES, or unset>]" in
# $work/NAME/times/<stage>-<item>, after sleeping SECONDS.
task_run() {  # STAGE SECONDS
  echo "s=\$(date +%s%N); sleep $2; echo \"\$s \$(date +%s%N) [\${CUDA_VISIBLE_DEVICES-unset}]\" > times/$1-\$TIERFLOW_ITEM"
}
# Runs scenario NAME's pipeline (on stdin) with the given flags; output in $dir/out.
scenario() {
  name="$1"; shift
  dir="$work/$name"
  mkdir -p "$dir/times"
  cat > "$dir/p.yaml"
  set +e
  (cd "$dir" && "$tierflow" run p.yaml --tiers "$work/tiers.yaml" --db "$dir/state/t.db" \
      --progress plain "$@" > "$dir/out" 2>&1)
  status=$?
  set -e
}
# Checks the records of scenario $dir: python code over `tasks`, a list of
# (name, start, end, devices), sorted by start.
check() {
  python3 - "$dir/times" "$1" <<'PY' || fail "$name: $2; records: $(cd "$dir/times" && grep -H . ./*); output: $(cat "$dir/out")"
import os, sys
folder, code = sys.argv[1], sys.argv[2]
tasks = []
for f in os.listdir(folder):
    s, e, dev = open(os.path.join(folder, f)).read().split()
    tasks.append((f, int(s), int(e), dev[1:-1]))
tasks.sort(key=lambda t: t[1])
def overlap(a, b): return a[1] < b[2] and b[1] < a[2]
def none_overlap(ts): return all(not overlap(a, b) for i, a in enumerate(ts) for b in ts[i + 1:])
sys.exit(0 if eval(code) else 1)
PY
}
ok() { [ "$status" = 0 ] || fail "$name: exit $status: $(cat "$dir/out")"; }

# a. One GPU: two 1-GPU tasks one after the other, each on device 0.
scenario one_gpu --gpus 1 --slots 4 <<YAML
name: one-gpu
stages:
  g:
    foreach: [a, b]
    resources: {gpus: 1}
    run: '$(task_run g 0.5)'
YAML
ok
check 'len(tasks) == 2 and none_overlap(tasks)' "1-GPU tasks overlapped on a 1-GPU budget"
check 'all(t[3] == "0" for t in tasks)' "a 1-GPU task did not see device 0"

# b. Two GPUs: side by side, distinct devices.
scenario two_gpus --gpus 2 --slots 4 <<YAML
name: two-gpus
stages:
  g:
    foreach: [a, b]
    resources: {gpus: 1}
    run: '$(task_run g 1)'
YAML
ok
check 'len(tasks) == 2 and overlap(tasks[0], tasks[1])' "1-GPU tasks did not run side by side on 2 GPUs"
check 'sorted(t[3] for t in tasks) == ["0", "1"]' "the two tasks did not get devices 0 and 1"

# c. CUDA_VISIBLE_DEVICES=3,5: those devices; a task without GPUs sees none.
CUDA_VISIBLE_DEVICES=3,5 scenario visible --slots 4 <<YAML
name: visible
stages:
  g:
    foreach: [a, b]
    resources: {gpus: 1}
    run: '$(task_run g 1)'
  c:
    foreach: [x]
    run: '$(task_run c 0)'
YAML
ok
check 'sorted(t[3] for t in tasks if t[0].startswith("g-")) == ["3", "5"]' \
  "the GPU tasks did not get devices 3 and 5 of CUDA_VISIBLE_DEVICES"
check 'overlap(*[t for t in tasks if t[0].startswith("g-")])' "the GPU tasks did not overlap"
check '[t[3] for t in tasks if t[0] == "c-x"] == [""]' "the task without GPUs did not see CUDA_VISIBLE_DEVICES empty"
events=$(sql "$dir/state/t.db" "select task_id, message from events where kind='resources' order by task_id")
grep -q '^g\[a\]|cpus 1 of [0-9.]*, memory none declared of .*, gpu [35] (of 3,5)$' <<<"$events" ||
  fail "visible: no resources event for g[a]: $events"
grep -q '^c\[x\]|.*no gpu (of 3,5; CUDA_VISIBLE_DEVICES="")$' <<<"$events" ||
  fail "visible: no resources event for c[x]: $events"

# d. CPUs: 2-cpu tasks with --cpus 2 one at a time, even with 4 slots.
scenario cpus --cpus 2 --slots 4 <<YAML
name: cpus
stages:
  w:
    foreach: [a, b, c]
    resources: {cpus: 2}
    run: '$(task_run w 0.4)'
YAML
ok
check 'len(tasks) == 3 and none_overlap(tasks)' "2-cpu tasks overlapped on 2 cpus"

# Fractional cpus: two 0.5-cpu tasks share one cpu.
scenario half --cpus 1 --slots 4 <<YAML
name: half
stages:
  w:
    foreach: [a, b]
    resources: {cpus: 0.5}
    run: '$(task_run w 1)'
YAML
ok
check 'len(tasks) == 2 and overlap(tasks[0], tasks[1])' "two 0.5-cpu tasks did not share 1 cpu"

# e. Memory: 1 GiB tasks on 1 GiB one at a time.
scenario memory --memory 1GiB --slots 4 <<YAML
name: memory
stages:
  m:
    foreach: [a, b, c]
    resources: {memory: 1GiB}
    run: '$(task_run m 0.4)'
YAML
ok
check 'len(tasks) == 3 and none_overlap(tasks)' "1 GiB tasks overlapped on 1 GiB"

# f. Never fits: refused before anything runs or is recorded.
scenario refused --gpus 2 <<YAML
name: refused
stages:
  prep:
    foreach: [a]
    run: '$(task_run prep 0)'
  train:
    needs: [prep]
    resources: {gpus: 4}
    run: "true"
YAML
[ "$status" = 1 ] || fail "refused: exit $status, not 1: $(cat "$dir/out")"
grep -q "p.yaml:[0-9]*: stage 'train' needs 4 GPUs; this machine offers 2 (--gpus; set CUDA_VISIBLE_DEVICES or --gpus)" "$dir/out" ||
  fail "refused: no clear error: $(cat "$dir/out")"
[ -z "$(ls "$dir/times")" ] || fail "refused: a task ran"
if [ -e "$dir/state/t.db" ]; then
  [ "$(sql "$dir/state/t.db" 'select count(*) from runs')" = 0 ] || fail "refused: a run was recorded"
fi
# The same budget rules on resume: a run that fits, failed, then resumed
# with a budget it no longer fits is refused naming the stage.
scenario resumed --gpus 1 <<YAML
name: resumed
stages:
  g:
    foreach: [a]
    resources: {gpus: 1}
    run: 'test -e ok || exit 1; $(task_run g 0)'
YAML
[ "$status" = 1 ] || fail "resumed: the first run did not fail: $(cat "$dir/out")"
touch "$dir/ok"
set +e
(cd "$dir" && "$tierflow" resume last --db "$dir/state/t.db" --gpus 0 > "$dir/out" 2>&1)
status=$?
set -e
[ "$status" = 1 ] && grep -q "stage 'g' needs 1 GPU; this machine offers 0" "$dir/out" ||
  fail "resumed: a resume on 0 GPUs was not refused: $(cat "$dir/out")"
(cd "$dir" && "$tierflow" resume last --db "$dir/state/t.db" --gpus 1 > "$dir/out" 2>&1) ||
  fail "resumed: resume on 1 GPU failed: $(cat "$dir/out")"
check '[t[3] for t in tasks] == ["0"]' "the resumed task did not get device 0"

# g. No starvation: `big` (2 cpus) becomes ready while `first` and a stream
# of 1-cpu `small` tasks share the 2 cpus; it is first in the queue (the
# longest chain), reserves, and starts as soon as the running small task
# ends: at most 2 small tasks start before it, none beside it.
scenario starve --cpus 2 --slots 4 <<YAML
name: starve
stages:
  first:
    foreach: [x]
    run: '$(task_run first 1.2)'
  big:
    needs: [first]
    foreach: [x]
    resources: {cpus: 2}
    run: '$(task_run big 0.3)'
  tail:
    needs: [big]
    run: "true"
  small:
    foreach: [1, 2, 3, 4, 5, 6, 7, 8]
    run: '$(task_run small 0.8)'
YAML
ok
check 'len(tasks) == 10' "not every task ran"
check 'sum(1 for t in tasks if t[0].startswith("small-") and t[1] < [b for b in tasks if b[0] == "big-x"][0][1]) <= 2' \
  "more than 2 small tasks started before the big one: it was starved"
check 'all(not overlap(t, [b for b in tasks if b[0] == "big-x"][0]) for t in tasks if t[0] != "big-x")' \
  "the 2-cpu task ran beside another on 2 cpus"
echo "local_resources: OK"
