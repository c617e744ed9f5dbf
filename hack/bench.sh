#!/usr/bin/env bash
# bench.sh: run every benchmark program under hack/bench/<component>/ and
# collect their reports into docs/benchmarks.md. Each program measures its
# target against a baseline in the same run (these machines are noisy) and
# prints a Markdown section on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
out=$(mktemp)
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`make bench\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3))."
  echo "Every figure is a ratio against a baseline measured in the same run."
  echo
} >"$out"
status=0
for dir in hack/bench/*/; do
  name=$(basename "$dir")
  # Shared code (hack/bench/benchutil) is no benchmark of its own.
  grep -qs '^package main' "$dir"*.go || continue
  echo "bench: $name" >&2
  if ! go run "./$dir" >>"$out"; then
    echo "bench: $name failed" >&2
    echo "## $name: FAILED in this run" >>"$out"
    status=1
  fi
  echo >>"$out"
done
mv "$out" docs/benchmarks.md
echo "bench: wrote docs/benchmarks.md" >&2
exit $status
