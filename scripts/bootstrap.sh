#!/usr/bin/env bash
# Installs exactly the Debian packages tierflow needs to build and test.
# Idempotent: packages already present are skipped, and nothing is started.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang clang-format
  libclang-rt-14-dev
  # libraries found with find_package
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsqlite3-dev libboost-graph-dev libcurl4-openssl-dev libcli11-dev
  libyaml-cpp-dev nlohmann-json3-dev libssl-dev libgtest-dev libgmock-dev
  libxxhash-dev libyaml-dev
  # metrics: the Prometheus C++ client library (registry, metric families, the
  # text serializer); tierflow serves it through its own HTTP server
  prometheus-cpp-dev
  # tests: tests/schema_test.py, examples/quickstart (python3 standard library)
  python3 python3-yaml python3-jsonschema
  # tests/chaos/chaos.py: XXH3-128, to check outputs against their recorded hashes
  python3-xxhash
  # examples/digits (the demo, tests/digits_run.sh): numpy, and the digits data
  # shipped with scikit-learn
  python3-numpy python3-sklearn
  # tests: the s3 adapter against OpenStack Swift with s3api (scripts/swift.sh)
  swift swift-proxy swift-account swift-container swift-object memcached
  # tests: `tierflow lineage --output dot` is checked by rendering it
  graphviz
  # tests: HTTP, S3 (curl --aws-sigv4) and TLS certificates from the shell
  curl openssl
  # the HTTP/JSON API and UI server (api/http_server.cc): Boost.Beast, Boost.Asio
  libboost-dev
  # tests: promtool and a real Prometheus scraping /metrics (scripts/prometheus.sh)
  prometheus
  # tests: the UI in a real browser (playwright-core drives it)
  chromium
  # tests: the live display of `tierflow run` in a real terminal (tests/terminal_tmux_test.py)
  tmux
  # tests and benchmarks: a private two-node Slurm 22.05 cluster on loopback
  # (scripts/slurm.sh)
  slurm-wlm munge
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#packages[@]} packages present"
else
  echo "bootstrap: installing ${missing[*]}"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The web UI's npm packages (ui/package-lock.json: the layout library, the
# bundler, playwright-core for the browser tests), which the build needs to
# bundle the UI into tierflow: `npm ci` when ui/node_modules is missing or
# older than the lock file. Node.js comes with the machine; Debian's when not.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v npm >/dev/null 2>&1; then
  echo "bootstrap: installing nodejs npm"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends nodejs npm
fi
lock="$root/ui/package-lock.json"
installed="$root/ui/node_modules/.package-lock.json"
if [ ! -e "$installed" ] || [ "$lock" -nt "$installed" ]; then
  echo "bootstrap: npm ci in ui/"
  (cd "$root/ui" && npm ci --no-audit --no-fund)
else
  echo "bootstrap: ui/node_modules up to date"
fi
