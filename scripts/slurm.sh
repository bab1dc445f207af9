#!/usr/bin/env bash
# A private two-node Slurm 22.05 cluster on loopback (Debian's slurm-wlm and
# munge), for the tests and benchmarks of the Slurm executor. Needs root:
# slurmd runs jobs as their submitter and munged runs as user munge.
#
#   slurm.sh start DIR   starts munged, slurmctld and slurmd n1 and n2, waits
#                        until both nodes are idle (or fails after
#                        $SLURM_START_TIMEOUT s, default 60, with the logs'
#                        tails), prints SLURM_CONF=DIR/slurm.conf and, on
#                        stderr, how long it took. Idempotent: what runs is
#                        kept; a slurmd or slurmctld that is gone (a test
#                        killed it) is started again on its port, keeping
#                        the jobs, and start waits until every node answers;
#                        without munged, everything is started afresh
#   slurm.sh env DIR     prints `export SLURM_CONF=...` for
#                        eval "$(scripts/slurm.sh env DIR)": all a client
#                        (sbatch, squeue, scontrol, ...) needs; the munge
#                        socket is in slurm.conf (AuthInfo)
#   slurm.sh stop DIR    cancels the cluster's jobs, then stops the daemons
#                        start started, by the PIDs in DIR/pids; idempotent;
#                        fails if a job step is left running
#
# Everything is in DIR, which the caller owns (start makes it a+x so user
# munge can reach DIR/munge):
#   slurm.conf gres.conf   the configuration (ClusterName tf<hash of DIR>)
#   ports                  the ports picked at start: free ones, so clusters
#                          started at once on one host do not clash
#   munge/                 owned by munge: key, socket, log, pid and seed
#   state/ spool/NODE/     slurmctld's state; each slurmd's spool
#   log/NAME.log           munged's is in munge/
#   pids/NAME.pid          the PIDs start launched (munged, slurmctld,
#                          slurmd-n1, slurmd-n2), the only ones stop kills
#   run/                   Slurm's own pid files
#   jobcomp.txt            one line per finished job (jobcomp/filetxt), with
#                          JobState and ExitCode: no accounting database here
#   nodes/n1 nodes/n2      each node's "node-local disk"
#   gpus/gpu0 gpus/gpu1    n1's two fake GPUs (Gres=gpu:2): character
#                          devices made here with mknod (1,3: what /dev/null
#                          is), because gres.conf's File= must name device
#                          files that exist; Slurm only stats them (no
#                          cgroups here), and being in DIR they are never
#                          shared with another cluster. A job with
#                          --gres=gpu:N gets CUDA_VISIBLE_DEVICES.
# Nodes: n1 and n2 on localhost, 2 CPUs and 1024 MB each
# (SlurmdParameters=config_overrides: what the conf says, whatever the host
# has), one partition `debug` with both. A node whose slurmd dies is DOWN
# after SlurmdTimeout (5 s) and its jobs end NODE_FAIL, not requeued
# (JobRequeue=0); it comes back on its own when its slurmd registers again
# (ReturnToService=2).
set -euo pipefail
# shellcheck source=daemon_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemon_lib.sh"

usage() {
  echo "usage: $0 start DIR | stop DIR | env DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
command=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)

nodes=(n1 n2)
daemons=(munged slurmctld slurmd-n1 slurmd-n2)
start_timeout=${SLURM_START_TIMEOUT:-60}  # seconds; the cluster is up in ~1 s
stop_timeout=10                           # seconds for the jobs to go, then for each daemon
export SLURM_CONF=$dir/slurm.conf

log() { echo "slurm.sh: $*" >&2; }

# The PID in DIR/pids/NAME.pid if that process is still the one we started:
# its command line names DIR.
pid_of() {
  local name=$1 pid
  [ -f "$dir/pids/$name.pid" ] || return 1
  pid=$(cat "$dir/pids/$name.pid")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/" || return 1
  alive "$pid" || return 1
  echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

# The process this start launched as NAME is still alive. While starting,
# not `running`: between fork and exec a daemon's command line is still
# this script's, which does not name DIR/ (a start then failed at random,
# under load).
launched_alive() {
  local pid
  pid=$(cat "$dir/pids/$1.pid" 2>/dev/null) && [ -n "$pid" ] && alive "$pid"
}

port_of() { sed -n "s/^$1=//p" "$dir/ports" 2>/dev/null | tail -n 1; }

cluster_name() { echo "tf$(printf %s "$dir" | md5sum | cut -c1-12)"; }

write_conf() {
  local ports
  read -r -a ports <<<"$(free_ports 3)"
  printf 'slurmctld=%s\nn1=%s\nn2=%s\n' "${ports[@]}" >"$dir/ports"
  cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm.sh start: a private test cluster, all state in
# $dir.
ClusterName=$(cluster_name)
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$(port_of slurmctld)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket.2
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# A dead slurmd: its node DOWN* ~13 s later (pings every SlurmdTimeout/3 s,
# each waiting up to 2 x MessageTimeout for the dead node; DOWN once it has
# not answered for SlurmdTimeout), its jobs failed (NODE_FAIL), not
# requeued; back when its slurmd registers again. ReturnToService=1, not 2:
# with 2 the controller's next ping (within 2 s) brings back a node set
# DOWN by hand too, so "scontrol update state=down" would not hold.
SlurmdTimeout=5
MessageTimeout=3
JobRequeue=0
ReturnToService=1
# scancel: SIGKILL 2 s after SIGTERM (default 30).
KillWait=2
SlurmdParameters=config_overrides
MailProg=/bin/true
GresTypes=gpu
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$(port_of n1) CPUs=2 RealMemory=1024 Gres=gpu:2 State=UNKNOWN
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$(port_of n2) CPUs=2 RealMemory=1024 State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$dir/gres.conf" <<EOF
NodeName=n1 Name=gpu File=$dir/gpus/gpu[0-1]
EOF
}

# The fake GPUs: character devices 1,3 (what /dev/null is) in DIR/gpus.
make_gpus() {
  local i
  mkdir -p "$dir/gpus"
  for i in 0 1; do
    [ -c "$dir/gpus/gpu$i" ] || { rm -f "$dir/gpus/gpu$i" && mknod -m 666 "$dir/gpus/gpu$i" c 1 3; }
  done
}

# munged as user munge, its key, socket, log, pid and seed in DIR/munge
# (which munged wants owned by munge and not writable by others).
prepare_munge() {
  chmod a+x "$dir"
  local up=$dir
  while up=$(dirname "$up") && [ "$up" != / ]; do
    if [ "$(($(stat -c '0%a' "$up") & 1))" -eq 0 ]; then
      log "user munge cannot reach $dir: $up is not executable by others (chmod a+x it, or start in another DIR)"
      return 1
    fi
  done
  mkdir -p "$dir/munge"
  chown munge:munge "$dir/munge"
  chmod 755 "$dir/munge"
  if [ ! -s "$dir/munge/munge.key" ]; then
    rm -f "$dir/munge/munge.key"
    mungekey --create --keyfile="$dir/munge/munge.key"
  fi
  chown munge:munge "$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
}

# Starts NAME in the foreground of a background job, logging its stdout and
# stderr to LOG, and records its PID (the daemon itself: exec'd, no fork).
launch() {
  local name=$1 log=$2
  shift 2
  "$@" </dev/null >>"$log" 2>&1 &
  echo $! >"$dir/pids/$name.pid"
}

launch_munged() {
  launch munged "$dir/munge/munged.out" \
    setpriv --reuid=munge --regid=munge --init-groups \
    munged --foreground --socket="$dir/munge/munge.socket.2" \
    --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
  # slurmctld cannot authenticate anything before munged answers.
  local deadline=$((SECONDS + start_timeout))
  until [ -S "$dir/munge/munge.socket.2" ]; do
    launched_alive munged || return 1
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.02
  done
}

# slurmctld in the foreground; ARGS: -c (no state from an earlier start)
# on a fresh start, nothing on a restart (it recovers its jobs from
# DIR/state).
launch_slurmctld() {
  launch slurmctld "$dir/log/slurmctld.out" slurmctld -D -i "$@" -f "$dir/slurm.conf"
}

launch_slurmd() {
  launch "slurmd-$1" "$dir/log/slurmd-$1.out" slurmd -D -N "$1" -f "$dir/slurm.conf"
}

# Whether sinfo shows every node idle.
all_idle() {
  local states
  states=$(sinfo -h -N -o '%N %t' 2>/dev/null | sort -u) || return 1
  [ "$states" = "$(printf '%s idle\n' "${nodes[@]}")" ]
}

# Whether every node answers the controller (sinfo marks one that does not
# with `*`, and shows `unk` until it first registers).
all_responding() {
  local states
  states=$(sinfo -h -N -o '%t' 2>/dev/null) || return 1
  [ -n "$states" ] && ! grep -qE '[*]$|^unk' <<<"$states"
}

# Waits until CHECK (all_idle, all_responding) holds, failing early when a
# daemon has exited.
wait_ready() {
  local check=$1 deadline=$((SECONDS + start_timeout)) name
  until $check; do
    for name in "${daemons[@]}"; do
      if ! launched_alive "$name"; then
        log "$name exited"
        return 1
      fi
    done
    if [ $SECONDS -ge $deadline ]; then
      log "$check still false after ${start_timeout}s: $(sinfo -h -N -o '%N %t' 2>&1 | tr '\n' ' ')"
      return 1
    fi
    sleep 0.1
  done
}

show_logs() {
  local file
  for file in "$dir/munge/munged.log" "$dir/munge/munged.out" "$dir/log/"*; do
    [ -f "$file" ] || continue
    log "last lines of $file:"
    tail -n 15 "$file" >&2 || true
  done
}

# The sockets of the job steps (slurmstepd) running on the nodes.
step_sockets() { find "$dir/spool" -type s 2>/dev/null; }

# Cancels every job of this cluster (SLURM_CONF names it) and waits, bounded,
# until squeue shows none and no job step runs: slurmstepd outlives slurmd,
# so the jobs go first. A step orphaned by a killed slurmd (its job ended
# NODE_FAIL) goes when that slurmd is started again: the controller tells it
# to kill the job it reports.
cancel_jobs() {
  running slurmctld || return 0
  local node
  for node in "${nodes[@]}"; do running "slurmd-$node" || launch_slurmd "$node"; done
  scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
  local deadline=$((SECONDS + stop_timeout))
  while [ -n "$(squeue -h -o %i 2>/dev/null)$(step_sockets)" ] && [ $SECONDS -lt $deadline ]; do
    sleep 0.1
  done
}

stop_one() {
  local name=$1 pid
  if pid=$(pid_of "$name") && ! terminate "$pid" "$stop_timeout"; then
    log "$name (pid $pid) still ran ${stop_timeout}s after SIGTERM: SIGKILL"
  fi
  rm -f "$dir/pids/$name.pid"
}

# Stops everything start started; fails, naming them, when job steps are
# left (slurmctld was gone, so nothing could cancel them).
stop_all() {
  local node left
  [ -d "$dir/pids" ] || return 0
  cancel_jobs
  for node in "${nodes[@]}"; do stop_one "slurmd-$node"; done
  stop_one slurmctld
  stop_one munged
  left=$(step_sockets)
  if [ -n "$left" ]; then
    log "job steps still run (their slurmstepd sockets): $left"
    return 1
  fi
}

# A fresh cluster: new ports, empty state, empty jobcomp.txt (job ids start
# at 1 again). A port picked free may be taken before the daemon binds it:
# then pick again (twice at most).
start_fresh() {
  local attempt name
  stop_all
  for attempt in 1 2 3; do
    rm -rf "$dir/state" "$dir/spool" "$dir/log" "$dir/run" "$dir/pids"
    mkdir -p "$dir/state" "$dir/log" "$dir/run" "$dir/pids"
    for name in "${nodes[@]}"; do mkdir -p "$dir/spool/$name" "$dir/nodes/$name"; done
    : >"$dir/jobcomp.txt"
    make_gpus
    prepare_munge || return 1
    write_conf
    if launch_munged && launch_slurmctld -c && launch_slurmd n1 && launch_slurmd n2 &&
      wait_ready all_idle; then
      return 0
    fi
    if [ $attempt -lt 3 ] && grep -qs 'Address already in use' "$dir/log/"*; then
      log "a port was taken meanwhile; starting again on other ports"
      stop_all
      continue
    fi
    return 1
  done
}

# Starts again, on the same ports, the daemons of a running cluster that
# are gone (a test killed a slurmd or slurmctld); jobs are kept.
restart_missing() {
  local node
  running slurmctld || launch_slurmctld
  for node in "${nodes[@]}"; do running "slurmd-$node" || launch_slurmd "$node"; done
  wait_ready all_responding
}

start() {
  local t0=$EPOCHREALTIME name up=1 how
  for name in "${daemons[@]}"; do running "$name" || up=0; done
  if [ $up -eq 1 ] && all_responding; then
    log "cluster $(cluster_name) already up"
    echo "SLURM_CONF=$SLURM_CONF"
    return 0
  fi
  if running munged && [ -f "$dir/slurm.conf" ]; then
    how=restarted
    restart_missing || how=
  else
    how=up
    start_fresh || how=
  fi
  if [ -z "$how" ]; then
    show_logs
    stop_all || true
    log "start failed; the files are in $dir"
    exit 1
  fi
  log "cluster $(cluster_name) $how in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')s" \
    "(slurmctld port $(port_of slurmctld), n1 $(port_of n1), n2 $(port_of n2)); logs in $dir/log"
  echo "SLURM_CONF=$SLURM_CONF"
}

case "$command" in
  start) start ;;
  stop) stop_all ;;
  env) echo "export SLURM_CONF=$(printf %q "$SLURM_CONF")" ;;
  *) usage ;;
esac
