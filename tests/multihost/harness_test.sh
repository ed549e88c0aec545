#!/usr/bin/env bash
# Self-test of the simulated-hosts harness (tests/multihost/hosts.sh) on 3 hosts: host names, TCP
# between hosts, cut/heal (a connect to a cut host times out rather than being refused), mpirun
# across the hosts (allreduce of the ranks, one rank per host, -x), mh_kill, mh_slow, a Slurm
# cluster over the hosts (where Slurm is installed), and that mh_teardown leaves no namespace,
# link, cgroup or folder of this run behind.
#   harness_test.sh        (exit 77, skipped, where namespaces cannot be made here)
# Every wait is bounded; about 15 s.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=hosts.sh
source "$HERE/hosts.sh"

why=$(mh_prerequisites) || { echo "skipped: $why"; exit 77; }
command -v mpicc >/dev/null || { echo "skipped: mpicc is not installed"; exit 77; }

mh_setup 3
ID=$MH_ID

# A TCP server on port 5000 that answers each connection with its host name, and a client that
# prints "ok NAME" or "err KIND SECONDS" (timeout: TimeoutError; refused: ConnectionRefusedError).
SERVER='import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5000)); s.listen(16)
while True:
    c, _ = s.accept(); c.sendall(socket.gethostname().encode()); c.close()'
CLIENT='import socket, sys, time
t = time.time()
try:
    c = socket.create_connection((sys.argv[1], 5000), timeout=float(sys.argv[2]))
    print("ok", c.recv(64).decode())
except OSError as e:
    print("err", type(e).__name__, "%.1f" % (time.time() - t))'

# connect FROM TO TIMEOUT: prints the client's answer for a connection from host FROM to TO.
connect() { mh_run "$1" python3 -c "$CLIENT" "$(mh_addr "$2")" "$3"; }

# expect_connect FROM TO: fails unless FROM reaches TO's server within 5 s (retried: the server
# may still be starting).
expect_connect() {
  local deadline=$((SECONDS + 5)) got=""
  while ((SECONDS < deadline)); do
    got=$(connect "$1" "$2" 1)
    [ "$got" = "ok $2" ] && return 0
    sleep 0.1
  done
  mh_fail "$1 did not reach the server on $2 within 5 s (last: '$got')"
}

# 1. Host names.
for h in h1 h2 h3; do
  got=$(mh_run "$h" hostname)
  [ "$got" = "$h" ] || mh_fail "mh_run $h hostname printed '$got'"
  [ -z "$(mh_run "$h" ls -A /tmp)" ] || mh_fail "/tmp of $h is not its own empty folder"
done
mh_say "hosts report their names"

# 2. TCP between hosts, a cut, a heal.
for h in h2 h3; do mh_run "$h" python3 -c "$SERVER" & done
expect_connect h1 h2
expect_connect h1 h3
mh_say "h1 reaches h2 and h3"
mh_cut h2
got=$(connect h1 h2 3)
[[ $got == "err TimeoutError 3."* ]] || mh_fail "a connect from h1 to the cut h2 did not time out after 3 s: '$got'"
expect_connect h1 h3
mh_say "h2 cut: connect from h1 timed out ($got); h1 still reaches h3"
mh_heal h2
expect_connect h1 h2
mh_say "h2 healed: reached again"

# 3. mpirun across the 3 hosts, from h1: the sum of the ranks 0+1+2, one rank per host, and a
# variable sent with -x reaches the remote ranks while an unsent one does not.
cat >"$MH_DIR/allreduce.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int rank, sum = 0;
  char host[64];
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  gethostname(host, sizeof host);
  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  printf("rank %d host %s sum %d sent=%s unsent=%s\n", rank, host, sum,
         getenv("MH_SENT") ? getenv("MH_SENT") : "-", getenv("MH_UNSENT") ? getenv("MH_UNSENT") : "-");
  MPI_Finalize();
  return 0;
}
EOF
mpicc -o "$MH_DIR/allreduce" "$MH_DIR/allreduce.c" || mh_fail "mpicc of the allreduce program failed"
mapfile -t MPIRUN_ARGS < <(mh_mpirun_args 1)
out=$(MH_SENT=yes MH_UNSENT=yes mh_run h1 timeout 60 mpirun "${MPIRUN_ARGS[@]}" -x MH_SENT -np 3 \
  "$MH_DIR/allreduce" 2>"$MH_DIR/mpirun.err") ||
  { cat "$MH_DIR/mpirun.err" >&2; mh_fail "mpirun across h1 h2 h3 failed (or ran past 60 s): $out"; }
expected='rank 0 host h1 sum 3 sent=yes unsent=yes
rank 1 host h2 sum 3 sent=yes unsent=-
rank 2 host h3 sum 3 sent=yes unsent=-'
[ "$(sort <<<"$out")" = "$expected" ] || mh_fail "mpirun printed:
$out
expected:
$expected"
mh_say "mpirun across 3 hosts: sum 3, ranks on h1 h2 h3, -x reaches remote ranks"

# 4. mh_kill ends a sleep in h3.
mh_run h3 sleep 300 &
sleeper=$!
deadline=$((SECONDS + 5))
until mh_pids h3 | grep -q .; do
  ((SECONDS < deadline)) || mh_fail "the sleep started in h3 did not show in mh_pids h3 within 5 s"
  sleep 0.05
done
mh_kill h3
status=0
wait "$sleeper" 2>/dev/null || status=$?
[ "$status" -eq 137 ] || mh_fail "the sleep in h3 ended with status $status after mh_kill h3, not 137 (SIGKILL)"
[ -z "$(mh_pids h3)" ] || mh_fail "processes left in h3 after mh_kill: $(mh_pids h3 | tr '\n' ' ')"
mh_say "mh_kill h3 ended its sleep"

# 5. mh_slow: a 2 s busy loop in h2 throttled to 10% of a CPU gets at most ~0.1 CPU per wall second
# and at most half of what the same loop gets in h1 at the same time (h1 gets ~1.0 on an idle
# machine, ~0.4 while another run of this test shares the 2 cores).
BUSY='import time
t0, c0 = time.time(), time.process_time()
while time.time() - t0 < 2: pass
print("%.2f" % ((time.process_time() - c0) / (time.time() - t0)))'
mh_slow h2 10
mh_run h1 python3 -c "$BUSY" >"$MH_DIR/busy-h1" &
busy1=$!
busy2=$(mh_run h2 python3 -c "$BUSY")
wait "$busy1"
busy1=$(cat "$MH_DIR/busy-h1")
mh_unslow h2
awk -v f="$busy1" -v s="$busy2" 'BEGIN { exit !(s <= 0.15 && s <= f / 2) }' ||
  mh_fail "mh_slow h2 10: cpu/wall in h2 $busy2, in h1 $busy1 (wanted h2 <= 0.15 and <= half of h1)"
mh_say "mh_slow h2 10: cpu/wall $busy2 in h2 against $busy1 in h1"

# 6. Slurm across the hosts (where Slurm is installed): a batch job of 2 nodes whose srun --mpi=pmix
# prints h1 and h2 and runs the allreduce program across them (sum 0+1 = 1).
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null; then
  mh_slurm_start
  cat >"$MH_DIR/job.sh" <<EOF
#!/bin/sh
srun --mpi=pmix hostname
srun --mpi=pmix $MH_DIR/allreduce
EOF
  job=$(sbatch --parsable -N2 -n2 -o "$MH_DIR/job.out" "$MH_DIR/job.sh") || mh_fail "sbatch -N2 -n2 was refused"
  deadline=$((SECONDS + 60))
  state=""
  until [ "$state" = COMPLETED ]; do
    state=$(scontrol show job -o "$job" 2>/dev/null | tr ' ' '\n' | sed -n 's/^JobState=//p')
    case $state in FAILED | CANCELLED | TIMEOUT | NODE_FAIL) break ;; esac
    ((SECONDS < deadline)) || break
    sleep 0.3
  done
  [ "$state" = COMPLETED ] || { cat "$MH_DIR/job.out" >&2; mh_fail "job $job did not complete within 60 s (state ${state:-unknown})"; }
  hosts=$(grep -x 'h[0-9]' "$MH_DIR/job.out" | sort | tr '\n' ' ')
  sums=$(grep -c '^rank [01] host h[12] sum 1 ' "$MH_DIR/job.out" || true)
  if [ "$hosts" != "h1 h2 " ] || [ "$sums" -ne 2 ]; then
    cat "$MH_DIR/job.out" >&2
    mh_fail "job $job: srun printed hosts '$hosts' and $sums right allreduce lines (wanted h1 h2, 2)"
  fi
  mh_say "slurm job $job over h1 h2: srun --mpi=pmix hostname and allreduce right"
else
  mh_say "slurm part skipped: slurmctld, slurmd or sbatch not installed"
fi

# 7. Teardown leaves nothing of this run, and is safe twice.
dir=$MH_DIR
mh_teardown
mh_teardown
left=$( { ip netns list; ip -o link show; ls /sys/fs/cgroup/cpu 2>/dev/null; } | grep -F "$ID" || true)
[ -z "$left" ] || mh_fail "left after mh_teardown: $left"
[ ! -e "$dir" ] || mh_fail "$dir left after mh_teardown"
mh_say "teardown left nothing"
echo "PASS"
