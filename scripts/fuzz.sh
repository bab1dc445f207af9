#!/usr/bin/env bash
# Fuzzes the pipeline loader (dag/fuzz_pipeline_loader.cc) with libFuzzer.
#
# Usage: scripts/fuzz.sh [SECONDS]   (default 60)
#
# Builds only the fuzz target, with clang, ASan and UBSan, into build-fuzz/;
# seeds a fresh temporary corpus with every pipeline in tests/pipelines and
# examples/; runs for SECONDS. Exits non-zero when the fuzzer finds a crash,
# a leak, undefined behaviour, a timeout (>10 s) or an input using over
# 2 GiB; the input that did it is left in build-fuzz/ (crash-*, leak-*,
# timeout-*, oom-*). Reproduce one with:
#   build-fuzz/dag/fuzz_pipeline_loader build-fuzz/crash-<hash>
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"
jobs=2  # the machines have 2 cores, shared

# Coverage instrumentation for every library in this build dir, so that
# libFuzzer is guided by the loader's branches and not only by the target's.
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIERFLOW_FUZZ=ON -DTIERFLOW_SANITIZE=ON \
  -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link \
  >/dev/null
cmake --build "$build" --target fuzz_pipeline_loader -j "$jobs"

work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
# valid/a.yaml and invalid/a.yaml may share a name: keep both.
while IFS= read -r -d '' file; do
  relative="${file#"$root"/}"
  cp "$file" "$work/corpus/${relative//\//_}"
done < <(find "$root/tests/pipelines" "$root/examples" -name '*.yaml' -print0)

# Words of the format, so that mutations build pipelines, not just noise.
cat >"$work/yaml.dict" <<'DICT'
"name: "
"stages:"
"params:"
"defaults:"
"description: "
"kind: "
"run: "
"needs: "
"inputs: "
"outputs: "
"from: "
"stream: "
"size: "
"durability: "
"io: "
"read: "
"write: "
"block_size: "
"read_bytes: "
"write_bytes: "
"read_passes: "
"streams: "
"resources: "
"cpus: "
"memory: "
"gpus: "
"retries: "
"limit: "
"backoff: "
"factor: "
"max_backoff: "
"timeout: "
"foreach: "
"range: "
"cache: "
"tier: "
"checkpoints: "
"keep: "
"env: "
"type: "
"default: "
"ingest"
"clean"
"feature"
"train"
"checkpoint"
"generic"
"sequential"
"random"
"volatile"
"durable"
"archive"
"int"
"float"
"bool"
"list"
"string"
"true"
"false"
"null"
"{{ params."
"{{ item }}"
"{{"
"}}"
"10GiB"
"512MiB"
"2h30m"
"500ms"
"&a "
"*a"
"<<: "
"---"
"\x0a  "
"\x0a    "
"- "
": "
"["
"]"
"{"
"}"
", "
"\x22"
"'"
"|"
">"
"!!str "
"#"
DICT

echo "fuzzing for ${seconds}s; findings go to $build/"
"$build/dag/fuzz_pipeline_loader" "$work/corpus" \
  -dict="$work/yaml.dict" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$build/" -print_final_stats=1
