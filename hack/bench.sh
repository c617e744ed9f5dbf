#!/usr/bin/env bash
# Runs every benchmark program under hack/bench/<component>/ and writes each
# one's section into docs/benchmarks.md, between the markers
#   <!-- bench:<component>:begin --> ... <!-- bench:<component>:end -->
# so that components refresh their own section and leave the others alone.
# Each program prints its markdown section on stdout (progress on stderr).
#   hack/bench.sh            all components
#   hack/bench.sh worker     only the named ones
set -euo pipefail
cd "$(dirname "$0")/.."
doc=docs/benchmarks.md
[ -f "$doc" ] || printf '# Benchmarks\n\nFigures written by `make bench` (hack/bench.sh); one section per component.\n' > "$doc"

components=("$@")
if [ ${#components[@]} -eq 0 ]; then
  for d in hack/bench/*/; do
    [ -f "$d/main.go" ] && components+=("$(basename "$d")")
  done
fi

for c in "${components[@]}"; do
  echo "bench: $c" >&2
  section=$(mktemp)
  go run "./hack/bench/$c" > "$section"
  begin="<!-- bench:$c:begin -->" end="<!-- bench:$c:end -->"
  if grep -qF "$begin" "$doc"; then
    awk -v b="$begin" -v e="$end" -v f="$section" '
      $0 == b { print; while ((getline line < f) > 0) print line; skip = 1; next }
      $0 == e { skip = 0 }
      !skip { print }' "$doc" > "$doc.tmp" && mv "$doc.tmp" "$doc"
  else
    { printf '\n%s\n' "$begin"; cat "$section"; printf '%s\n' "$end"; } >> "$doc"
  fi
  rm -f "$section"
done
