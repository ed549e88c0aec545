# shellcheck shell=bash
# Helpers of the end-to-end case scripts (cases.sh, quarantine.sh), sourced by them: a work
# folder removed at exit (kept with KEEP_WORK=1), trainguard under mpirun with a time limit, and
# checks of exit codes and of the words a user would read.
set -uo pipefail
BIN=${TG_TEST_BIN:?set TG_TEST_BIN to the trainguard executable}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tg_e2e_XXXXXX")
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"' EXIT
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)

fail() { echo "FAIL: $*" >&2; exit 1; }

# run NAME NP ARGS... : runs trainguard under mpirun with a 120 s limit; output in $WORK/NAME.{out,err}
run() {
  local name=$1 np=$2; shift 2
  timeout 120 "${MPIRUN[@]}" -np "$np" "$BIN" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  echo $? >"$WORK/$name.rc"
}
rc_of() { cat "$WORK/$1.rc"; }
# rank_pid R: the pid of this test's trainguard rank R (its MPI rank, from its environment).
rank_pid() {
  local pid
  for pid in $(pgrep -f "$BIN train"); do
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && { echo "$pid"; return 0; }
  done
  return 1
}
expect_rc() { [ "$(rc_of "$1")" = "$2" ] || { cat "$WORK/$1.out" "$WORK/$1.err" >&2; fail "$1: exit $(rc_of "$1"), expected $2"; }; }
expect_text() { grep -qF -- "$3" "$WORK/$1.$2" || { cat "$WORK/$1.out" "$WORK/$1.err" >&2; fail "$1: '$3' not in std$2"; }; }


# Loopback helpers of the cases with a real Prometheus or Pushgateway.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
fetch() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }
# query PROMQL: the value of each series of an instant query to the Prometheus on $prom_port, one
# "rank value" line each.
query() {
  python3 -c 'import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[2]})
for r in json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]:
    print(r["metric"].get("rank", "-"), r["value"][1])' "http://127.0.0.1:$prom_port" "$1"
}
