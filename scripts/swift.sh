#!/usr/bin/env bash
# A one-node OpenStack Swift with the S3 API (s3api + tempauth) on
# 127.0.0.1: the real S3 server the s3 adapter's tests talk to.
#
#   swift.sh start DIR   prints S3_ENDPOINT=http://127.0.0.1:PORT once every
#                        server answers; idempotent: what runs is kept, what
#                        does not is started again
#   swift.sh stop DIR    stops every server start started, by PID
#
# DIR holds the configs, rings (built once, reused while their ports are
# free), data, logs (NAME.log), PID files (NAME.pid) and the chosen ports
# (ports). Ports are free ones picked here, so parallel runs do not clash.
# Two proxies share the back end: `proxy` (DIR/endpoint) for the tests and
# `fault-proxy` (DIR/fault_endpoint), which a test may kill to see a server
# die mid-transfer. Credentials: test:tester / testing, region us-east-1.
set -euo pipefail
# shellcheck source=daemon_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemon_lib.sh"

usage() {
  echo "usage: $0 start DIR | stop DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
command=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)

# Swift's own Python, whatever python3 comes first on PATH.
python=/usr/bin/python3
backends=(account container object)
proxies=(proxy fault-proxy)
ready_timeout=60  # seconds; Swift is ready in ~3 s on an idle machine

log() { echo "swift.sh: $*" >&2; }

# The PID in DIR/NAME.pid if that process is still the one we started:
# its command line names DIR (memcached: its port).
pid_of() {
  local name=$1 pid marker
  [ -f "$dir/$name.pid" ] || return 1
  pid=$(cat "$dir/$name.pid")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  marker=$dir
  [ "$name" = memcached ] && marker="-p$(port_of memcached)"
  tr '\0' ' ' <"/proc/$pid/cmdline" | tr -d ' ' | grep -qF -- "${marker// /}" || return 1
  echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

port_of() { sed -n "s/^$1=//p" "$dir/ports" 2>/dev/null | tail -n 1; }

set_port() {
  touch "$dir/ports"
  sed -i "/^$1=/d" "$dir/ports"
  echo "$1=$2" >>"$dir/ports"
}

port_free() {
  "$python" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

stop_one() {
  local name=$1 pid
  if pid=$(pid_of "$name"); then terminate "$pid" || true; fi
  rm -f "$dir/$name.pid"
}

stop_all() {
  local name
  for name in "${proxies[@]}" "${backends[@]}" memcached; do stop_one "$name"; done
}

# Rings for the three back-end servers on the ports in DIR/ports, one
# device each (DIR/srv/d1), one replica. Built in one Python process: the
# swift-ring-builder CLI takes ~4 s for the nine steps.
build_rings() {
  "$python" - "$dir" "$(port_of account)" "$(port_of container)" "$(port_of object)" <<'EOF'
import sys
from swift.common.ring import RingBuilder
folder, ports = sys.argv[1], dict(zip(("account", "container", "object"), sys.argv[2:]))
for kind, port in ports.items():
    builder = RingBuilder(6, 1, 1)
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                     "device": "d1", "weight": 100})
    builder.rebalance()
    builder.save(f"{folder}/{kind}.builder")
    builder.get_ring().save(f"{folder}/{kind}.ring.gz")
EOF
}

write_backend_conf() {
  local kind=$1
  cat >"$dir/$kind-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $(port_of "$kind")
workers = 0
user = $(id -un)
swift_dir = $dir
devices = $dir/srv
mount_check = false
disable_fallocate = true
recon_cache_path = $dir/cache
log_name = $kind

[pipeline:main]
pipeline = healthcheck $kind-server

[app:$kind-server]
use = egg:swift#$kind

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
}

write_proxy_conf() {
  local name=$1
  cat >"$dir/$name-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $(port_of "$name")
workers = 0
user = $(id -un)
swift_dir = $dir
log_name = $name

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
# bucket.localhost:PORT for virtual-hosted-style requests (curl resolves
# *.localhost to the loopback itself).
storage_domain = localhost
# As many parts as AWS allows.
max_upload_part_num = 10000
# Listing pages of 100 keys (AWS: 1000), so tests cover continuation tokens
# without writing thousands of objects.
max_bucket_listing = 100

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$(port_of memcached)

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:dlo]
use = egg:swift#dlo
EOF
}

# Starts NAME in the background, logging to DIR/NAME.log, and records its PID.
launch() {
  local name=$1
  shift
  "$@" </dev/null >>"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

start_backends() {
  stop_all
  local reuse=1 kind ports
  for kind in "${backends[@]}"; do
    [ -f "$dir/$kind.ring.gz" ] && [ -n "$(port_of "$kind")" ] &&
      port_free "$(port_of "$kind")" || reuse=0
  done
  if [ $reuse -eq 0 ]; then
    read -r -a ports <<<"$(free_ports 3)"
    set_port account "${ports[0]}"
    set_port container "${ports[1]}"
    set_port object "${ports[2]}"
    build_rings
  fi
  read -r -a ports <<<"$(free_ports 1)"
  set_port memcached "${ports[0]}"
  mkdir -p "$dir/srv/d1" "$dir/cache"
  local user=()
  [ "$(id -u)" -eq 0 ] && user=(-u root)
  launch memcached memcached -l 127.0.0.1 -p "$(port_of memcached)" -U 0 -m 64 "${user[@]}"
  for kind in "${backends[@]}"; do
    write_backend_conf "$kind"
    launch "$kind" "swift-$kind-server" "$dir/$kind-server.conf" -v
  done
}

start_proxy() {
  local name=$1 port
  port=$(port_of "$name")
  if [ -z "$port" ] || ! port_free "$port"; then
    port=$(free_ports 1)
    set_port "$name" "$port"
  fi
  write_proxy_conf "$name"
  launch "$name" swift-proxy-server "$dir/$name-server.conf" -v
}

# Waits until every server answers: each healthcheck, then tempauth through
# each proxy (which needs memcached). Bounded: fails after $ready_timeout s.
wait_ready() {
  local deadline=$((SECONDS + ready_timeout)) name url
  local urls=()
  for name in "${backends[@]}" "${proxies[@]}"; do
    urls+=("http://127.0.0.1:$(port_of "$name")/healthcheck")
  done
  for url in "${urls[@]}"; do
    until curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then
        log "no answer from $url after ${ready_timeout}s; logs in $dir"
        return 1
      fi
      check_alive || return 1
      sleep 0.1
    done
  done
  for name in "${proxies[@]}"; do
    until curl -fsS --max-time 2 -o /dev/null -H 'X-Auth-User: test:tester' \
      -H 'X-Auth-Key: testing' "http://127.0.0.1:$(port_of "$name")/auth/v1.0" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then
        log "tempauth on $name does not answer after ${ready_timeout}s; logs in $dir"
        return 1
      fi
      sleep 0.1
    done
  done
}

# Fails, naming the log, when a server we started has exited.
check_alive() {
  local name
  for name in memcached "${backends[@]}" "${proxies[@]}"; do
    if ! running "$name"; then
      log "$name exited; last lines of $dir/$name.log:"
      tail -n 20 "$dir/$name.log" >&2 || true
      return 1
    fi
  done
}

start() {
  local name backends_up=1
  for name in memcached "${backends[@]}"; do running "$name" || backends_up=0; done
  [ $backends_up -eq 1 ] || start_backends
  for name in "${proxies[@]}"; do running "$name" || start_proxy "$name"; done
  if ! wait_ready; then
    stop_all
    exit 1
  fi
  echo "http://127.0.0.1:$(port_of proxy)" >"$dir/endpoint"
  echo "http://127.0.0.1:$(port_of fault-proxy)" >"$dir/fault_endpoint"
  echo "S3_ENDPOINT=$(cat "$dir/endpoint")"
}

case "$command" in
  start) start ;;
  stop) stop_all ;;
  *) usage ;;
esac
