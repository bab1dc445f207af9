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
  # tests: tests/schema_test.py, examples/quickstart (python3 standard library)
  python3 python3-yaml python3-jsonschema
  # tests: the s3 adapter against OpenStack Swift with s3api (scripts/swift.sh)
  swift swift-proxy swift-account swift-container swift-object memcached
  # tests: `tierflow lineage --output dot` is checked by rendering it
  graphviz
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
