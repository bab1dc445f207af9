#!/usr/bin/env bash
# Node-local tiers on Slurm (docs/slurm.md "Node-local tiers"), against the
# private two-node Slurm of scripts/slurm.sh in a temporary directory
# (CTest: slurm_node_tiers_test, label slurm). A `scope: node` tier whose
# root is CLUSTER/nodes/$SLURMD_NODENAME/local (each node's own folder,
# expanded by exec-task on the node) and a pipeline where `make` writes,
# `read1` and `read2` read it, and `train` checkpoints:
#  - SLURMD_NODENAME is set in the jobs' environment;
#  - read1 read make.data from its node's copy (the real data), and the
#    copy is recorded in artifact_copies with the node (NODE:PATH), then
#    evicted after its last reader;
#  - read2 went to the node holding the copy (`placed` event: --nodelist)
#    and read the same copy;
#  - train wrote its checkpoints on its node's tier, relayed to the cluster
#    folder and flushed to the durable tier while it ran;
#  - after the run, nothing of it is left in the node folders (bounded wait).
# Needs root (slurmd runs jobs as their submitter): exits 77 otherwise.
#
# Usage: slurm_node_tiers_test.sh TIERFLOW_BINARY
test_name=slurm_node_tiers_test
limit=30 # seconds for any one wait
source "$(dirname "${BASH_SOURCE[0]}")/slurm_test_lib.sh"
tierflow=$(realpath "$1")

require_root

start_cluster slurm-node
nodes=$dir/cluster/nodes
sql() { sqlite3 "$dir/.tierflow/tierflow.db" "$1"; }

cat >"$dir/tiers.yaml" <<EOF
tiers:
  bulk:
    adapter: posix
    root: $dir/bulk
    scope: cluster
    durability: durable
    profile: {seq_read_mb_s: 50, seq_write_mb_s: 50, rand_read_iops: 100, latency_us: 20000}
  scratch:
    adapter: posix
    root: $dir/scratch
    scope: cluster
    durability: volatile
    profile: {seq_read_mb_s: 500, seq_write_mb_s: 500, rand_read_iops: 10000, latency_us: 500}
  nvme:
    adapter: posix
    root: $nodes/\$SLURMD_NODENAME/local
    scope: node
    durability: node
    profile: {seq_read_mb_s: 3000, seq_write_mb_s: 2000, rand_read_iops: 200000, latency_us: 50}
EOF
cat >"$dir/train.py" <<'PY'
import os, time
import tierflow_task as tf
with open(os.environ["SIDE"], "w") as f:
    f.write(tf.checkpoint_dir() + "\n")
for step in range(1, 4):
    tf.save_checkpoint(step, {"state.bin": b"state %d" % step})
    tf.wait_checkpoint()
    time.sleep(0.3)  # exec-task relays it while the task runs
with open(os.environ["TIERFLOW_OUTPUT_MODEL"], "w") as f:
    f.write("trained\n")
PY
cat >"$dir/pipeline.yaml" <<EOF
name: slurmnodetiers
stages:
  make:
    kind: ingest
    run: head -c 300000 /dev/urandom > "\$TIERFLOW_OUTPUT_DATA"
    outputs: [data]
  read1:
    kind: train
    inputs: {data: make.data}
    run: 'printf "%s %s %s\n" "\$SLURMD_NODENAME" "\$TIERFLOW_INPUT_DATA" "\$(cksum < "\$TIERFLOW_INPUT_DATA")" > "\$TIERFLOW_OUTPUT_SEEN"'
    outputs: [seen]
  read2:
    kind: train
    inputs: {data: make.data, seen: read1.seen}
    run: 'printf "%s %s %s\n" "\$SLURMD_NODENAME" "\$TIERFLOW_INPUT_DATA" "\$(cksum < "\$TIERFLOW_INPUT_DATA")" > "\$TIERFLOW_OUTPUT_SEEN"'
    outputs: [seen]
  train:
    kind: train
    run: [python3, $dir/train.py]
    env: {PYTHONPATH: $root/sdk/python, SIDE: $dir/train.dir}
    checkpoints: {keep: 2}
    outputs: [model]
EOF

t0=$EPOCHREALTIME
cd "$dir"
"$tierflow" run pipeline.yaml --tiers tiers.yaml --db .tierflow/tierflow.db --executor slurm \
  --progress plain >run.out 2>&1 || fail "the run: $(tail -20 run.out)"
run=$(sql "SELECT id FROM runs")
[ "$(sql "SELECT count(*) FROM tasks WHERE state != 'succeeded'")" -eq 0 ] ||
  fail "tasks not succeeded: $(sql "SELECT id, state, message FROM tasks")"
node=$(sql "SELECT worker FROM attempts WHERE task_id='read1'")
case $node in n1 | n2) ;; *) fail "read1's attempt records node '$node'" ;; esac
seen1=$(cat "$dir/bulk/runs/$run/artifacts/read1/seen")
seen2=$(cat "$dir/bulk/runs/$run/artifacts/read2/seen")
home_sum=$(cksum <"$dir/bulk/runs/$run/artifacts/make/data")
copy=$nodes/$node/local/runs/$run/artifacts/make/data
[ "$seen1" = "$node $copy $home_sum" ] ||
  fail "read1 did not read make.data from $node's node tier (SLURMD_NODENAME set in the job): $seen1"
# read2 went where the copy is, and says why.
[ "$(sql "SELECT worker FROM attempts WHERE task_id='read2'")" = "$node" ] ||
  fail "read2 should run on $node: $(sql "SELECT task_id, worker, handle FROM attempts")"
sql "SELECT message FROM events WHERE kind='placed' AND task_id='read2'" |
  grep -q -- "--nodelist=$node: its node tiers hold 1 of the 2 artifacts it reads there" ||
  fail "read2's placed event: $(sql "SELECT task_id, message FROM events WHERE kind='placed'")"
[ "$seen2" = "$seen1" ] || fail "read2 should read the same node copy: $seen2 vs $seen1"
# The copy in lineage, with its node, evicted after its last reader.
copies=$(sql "SELECT c.uri || ' ' || c.state FROM artifact_copies c JOIN artifacts a
              ON a.id = c.artifact_id WHERE a.task_id='make' AND c.tier='nvme'")
[ "$copies" = "$node:$copy evicted" ] || fail "node copies of make.data: $copies"
[ -n "$(sql "SELECT handle FROM attempts WHERE task_id='read2' AND handle != ''")" ] ||
  fail "read2 has no Slurm job id"
# Checkpoints on the node tier, relayed and flushed to bulk while it ran.
tnode=$(sql "SELECT worker FROM attempts WHERE task_id='train'")
[ "$(cat "$dir/train.dir")" = "$nodes/$tnode/local/runs/$run/checkpoints/train" ] ||
  fail "train wrote its checkpoints in $(cat "$dir/train.dir") (ran on $tnode)"
sql "SELECT message FROM events WHERE kind='checkpoint_dir'" |
  grep -q "on $tnode's node tier nvme .*copied to tier scratch, then flushed to tier bulk" ||
  fail "checkpoint_dir event: $(sql "SELECT message FROM events WHERE kind='checkpoint_dir'")"
states=$(sql "SELECT group_concat(step || ':' || tier || ':' || state, ' ') FROM (SELECT * FROM checkpoints ORDER BY step)")
[ "$states" = "1:bulk:deleted 2:bulk:present 3:bulk:present" ] ||
  fail "checkpoints: $(sql "SELECT step, tier, state, uri FROM checkpoints")"
# Nothing of the run left in the node folders (the eviction job ran).
deadline=$((SECONDS + limit))
until [ -z "$(find "$nodes"/n*/local/runs -type f 2>/dev/null)" ]; do
  [ $SECONDS -lt $deadline ] ||
    fail "node copies left after ${limit}s: $(find "$nodes"/n*/local/runs -type f); squeue: $(squeue 2>&1)"
  sleep 0.1
done
grep -q " $node\$" ".tierflow/runs/$run/slurm/evictions.log" ||
  fail "no eviction job on $node: $(cat ".tierflow/runs/$run/slurm/evictions.log" 2>&1)"
say "node copies recorded, read2 placed on $node, checkpoints relayed, copies evicted in $(elapsed "$t0")s"
say "PASS"
