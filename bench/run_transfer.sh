#!/usr/bin/env bash
# Runs bench/transfer (see bench/README.md): transfer_posix (tierflow's
# transfer engine vs cp, dd and fio copying one file between two posix
# tiers) and transfer_s3 (the s3 adapter vs `curl --aws-sigv4` uploading
# and downloading one file), against an OpenStack Swift with s3api that it
# starts on loopback with scripts/swift.sh in a temporary folder and stops
# on exit. Installs Debian's fio when it is missing, builds Release into
# build/ (the same configuration as bench/run.sh; TIERFLOW_BENCH_BUILD=DIR
# builds elsewhere) and prints markdown tables.
#
#   bench/run_transfer.sh [--posix-size BYTES] [--s3-size BYTES] [--runs N]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TIERFLOW_BENCH_BUILD:-$root/build}"
posix_size=$((1 << 30))
s3_size=$((256 << 20))
runs=5

while [ $# -gt 0 ]; do
  case "$1" in
    --posix-size) posix_size=$2 ;;
    --s3-size) s3_size=$2 ;;
    --runs) runs=$2 ;;
    *)
      echo "usage: $0 [--posix-size BYTES] [--s3-size BYTES] [--runs N]" >&2
      exit 2
      ;;
  esac
  shift 2
done

bash "$root/scripts/bootstrap.sh"
if ! command -v fio >/dev/null 2>&1; then
  # root needs no sudo (and the project's machines have none).
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends fio
fi
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j 2 --target transfer_posix transfer_s3

swift_dir="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-bench-swift.XXXXXX")"
cleanup() {
  bash "$root/scripts/swift.sh" stop "$swift_dir" || true
  rm -rf "$swift_dir"
}
trap cleanup EXIT
bash "$root/scripts/swift.sh" start "$swift_dir" >/dev/null

echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "### transfer_posix: $posix_size bytes, $runs runs"
echo
"$build/bench/transfer_posix" --size "$posix_size" --runs "$runs"
echo
echo "### transfer_s3: $s3_size bytes, $runs runs"
echo
"$build/bench/transfer_s3" --swift-dir "$swift_dir" --size "$s3_size" --runs "$runs"
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
