#!/usr/bin/env bash
# Fails, listing the files, when a C++ source differs from .clang-format (Google style, 120
# columns). Fix with: clang-format -i FILE...  Run by ctest as the test "format".
set -uo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find launcher trainer diagnostics tests bench cmake -name '*.cc' -o -name '*.h' | sort)
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  echo "not formatted (clang-format -i ${bad[*]}):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "${#files[@]} files formatted"
