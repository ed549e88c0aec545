#!/usr/bin/env bash
# The Kubernetes entrypoints (ctest k8s.entrypoints): k8s/trainguard-launch.sh (the MPIJob
# launcher's) and k8s/trainguard-worker.sh (the workers'), run here with stand-in children, then
# the launcher's with the real mpirun and trainguard ($TG_TEST_BIN): SIGTERM to it must end the
# job with a checkpoint and exit 12, and the same command must then resume and finish.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
launch=$root/k8s/trainguard-launch.sh
worker=$root/k8s/trainguard-worker.sh
tmp=$(mktemp -d)
pids=() groups=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${groups[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAILED: $*"
  exit 1
}
# Waits up to $2 seconds for file $1 to contain $3.
wait_for_text() {
  local deadline=$((SECONDS + $2))
  until grep -q -- "$3" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
# Waits for pid $1 (a child of this shell); its exit status goes to `code`.
wait_code() {
  code=0
  wait "$1" || code=$?
}

if command -v shellcheck >/dev/null; then
  shellcheck "$launch" "$worker" || fail "shellcheck reports the findings above"
  echo "ok: shellcheck finds nothing in the entrypoints"
else
  echo "note: shellcheck is not installed; the entrypoints were not linted"
fi

# A stand-in for mpirun (or a rank): notes the signals it gets; SIGUSR1 ends it with 12.
cat >"$tmp/fake-rank" <<'EOF'
#!/usr/bin/env bash
trap 'echo "usr1 $$" >>"$SIGNALS"; exit 12' USR1
trap 'echo "term $$" >>"$SIGNALS"; exit 143' TERM
echo "started $$" >>"$SIGNALS"
for ((i = 0; i < 600; i++)); do sleep 0.1; done # a stand-in left behind ends within a minute
EOF
# A stand-in for the worker's orted: starts two ranks and waits for them. Its process name must
# be fake-orted: a direct interpreter line, since env would make it "bash".
cat >"$tmp/fake-orted" <<EOF
#!/bin/bash
"$tmp/fake-rank" & "$tmp/fake-rank" & wait
EOF
chmod +x "$tmp/fake-rank" "$tmp/fake-orted"
export SIGNALS=$tmp/signals TG_LAUNCH_STATE_DIR=$tmp/state TG_LAUNCH_WAIT_S=0

# 1. SIGTERM to the launcher becomes one SIGUSR1 to its child; the child's 12 is the exit code.
: >"$SIGNALS"
"$launch" "$tmp/fake-rank" 2>"$tmp/launch.log" &
pid=$!
pids+=("$pid")
wait_for_text "$SIGNALS" 10 started || fail "the launcher did not start its command"
kill -TERM "$pid"
wait_code "$pid"
[[ $code == 12 ]] || fail "launcher: SIGTERM gave exit $code, expected the child's 12"
grep -q '^usr1' "$SIGNALS" || fail "launcher: the child did not get SIGUSR1: $(cat "$SIGNALS")"
! grep -q '^term' "$SIGNALS" || fail "launcher: the child got SIGTERM, which mpirun would forward late"
[[ ! -e $tmp/state/permanent-failure ]] || fail "launcher: exit 12 (preempted) was marked permanent"
echo "ok: launcher: SIGTERM -> SIGUSR1 to mpirun, exit 12, to be retried"

# 2. A permanent code (7: labels) leaves the marker; the next start exits 7 without running.
code=0
"$launch" bash -c 'exit 7' 2>"$tmp/launch.log" || code=$?
[[ $code == 7 && -s $tmp/state/permanent-failure ]] || fail "launcher: exit 7 gave $code and no marker"
code=0
"$launch" touch "$tmp/ran" 2>"$tmp/launch.log" || code=$?
[[ $code == 7 && ! -e $tmp/ran ]] || fail "launcher: after a permanent failure it ran again (exit $code)"
grep -q "failed permanently with exit 7" "$tmp/launch.log" || fail "launcher: no reason given: $(cat "$tmp/launch.log")"
rm -rf "$tmp/state"
echo "ok: launcher: exit 7 is permanent: the restarted container exits 7 at once"

# 3. Retried codes (6 peer, 137 SIGKILL, 1) leave no marker; 0 is 0.
for c in 6 137 1 0; do
  code=0
  "$launch" bash -c "exit $c" 2>"$tmp/launch.log" || code=$?
  [[ $code == "$c" && ! -e $tmp/state/permanent-failure ]] || fail "launcher: exit $c gave $code or a marker"
done
echo "ok: launcher: exits 6, 137, 1 are retried, 0 passes"

# 3b. 13 (out of memory) is permanent, 14 (GPU fault) retried; each attempt exports the number of
#     earlier ones; a failure that comes back with the same fingerprint ends the retries.
code=0
"$launch" bash -c 'exit 13' 2>"$tmp/launch.log" || code=$?
[[ $code == 13 && -s $tmp/state/permanent-failure ]] || fail "launcher: exit 13 gave $code and no marker"
rm -rf "$tmp/state"
code=0
"$launch" bash -c 'exit 14' 2>"$tmp/launch.log" || code=$?
[[ $code == 14 && ! -e $tmp/state/permanent-failure ]] || fail "launcher: exit 14 gave $code or a marker"
grep -q "cordon" "$tmp/launch.log" || fail "launcher: a GPU fault without advice: $(cat "$tmp/launch.log")"
rm -rf "$tmp/state"
for attempt in 0 1; do
  # shellcheck disable=SC2016 # expanded by the inner shell
  "$launch" bash -c 'echo "$TRAINGUARD_RESTART_COUNT" >"$0"' "$tmp/count" 2>/dev/null
  [[ $(cat "$tmp/count") == "$attempt" ]] || fail "launcher: attempt $attempt exported '$(cat "$tmp/count")'"
done
rm -rf "$tmp/state"
export TG_LAUNCH_FAILURE_FILE=$tmp/run.ckpt.failure
# shellcheck disable=SC2016 # expanded by the inner shell
stall='echo "exit=11 kind=stall step=3" >"$0"; exit 11'
code=0
"$launch" bash -c "$stall" "$TG_LAUNCH_FAILURE_FILE" 2>"$tmp/launch.log" || code=$?
[[ $code == 11 && ! -e $tmp/state/permanent-failure ]] || fail "launcher: a first stall was not retried ($code)"
code=0
"$launch" bash -c "$stall" "$TG_LAUNCH_FAILURE_FILE" 2>"$tmp/launch.log" || code=$?
[[ $code == 11 && -s $tmp/state/permanent-failure ]] || fail "launcher: the same stall again was retried ($code)"
grep -q "the failure the last restart was for came back: exit=11 kind=stall step=3" "$tmp/launch.log" ||
  fail "launcher: the repeated failure was not named: $(cat "$tmp/launch.log")"
code=0
"$launch" touch "$tmp/ran" 2>"$tmp/launch.log" || code=$?
[[ $code == 11 && ! -e $tmp/ran ]] || fail "launcher: after a repeated failure it ran again (exit $code)"
rm -rf "$tmp/state"
# 15 (bad samples set aside) is retried even when its fingerprint repeats: each quarantine is new.
# shellcheck disable=SC2016 # expanded by the inner shell
quarantined='echo "exit=15 kind=quarantined step=2" >"$0"; exit 15'
for attempt in 1 2; do
  code=0
  "$launch" bash -c "$quarantined" "$TG_LAUNCH_FAILURE_FILE" 2>"$tmp/launch.log" || code=$?
  [[ $code == 15 && ! -e $tmp/state/permanent-failure ]] || fail "launcher: quarantine $attempt was not retried ($code)"
done
unset TG_LAUNCH_FAILURE_FILE
rm -rf "$tmp/state"
echo "ok: launcher: 13 permanent, 14 retried with advice, attempts counted, a repeated failure not retried, 15 always retried"

# 4. Waiting for the workers: an unreachable ssh port delays the start by TG_LAUNCH_WAIT_S at most.
printf '127.0.0.1 slots=2\n' >"$tmp/hostfile"
start=$SECONDS
OMPI_MCA_orte_default_hostfile=$tmp/hostfile TG_LAUNCH_WAIT_S=2 TG_LAUNCH_SSH_PORT=1 \
  "$launch" true 2>"$tmp/launch.log" || fail "launcher: waiting for an unreachable worker failed"
if ! grep -q "still unreachable" "$tmp/launch.log" || ((SECONDS - start >= 10)); then
  fail "launcher: the wait for an unreachable worker was not bounded: $(cat "$tmp/launch.log")"
fi
echo "ok: launcher: the wait for the workers is bounded"

# 5. The worker: SIGTERM sends SIGUSR1 to the ranks (children of orted), waits for them, then
#    stops the daemon; the daemon's own children are left alone.
: >"$SIGNALS"
TG_WORKER_RANK_PARENT=fake-orted "$worker" sleep 300 2>"$tmp/worker.log" &
wpid=$!
pids+=("$wpid")
"$tmp/fake-orted" &
opid=$!
pids+=("$opid")
deadline=$((SECONDS + 10))
until (($(grep -c started "$SIGNALS") == 2)); do
  ((SECONDS < deadline)) || fail "the stand-in ranks did not start"
  sleep 0.2
done
kill -TERM "$wpid"
wait_code "$wpid"
[[ $code == 0 ]] || fail "worker: SIGTERM gave exit $code: $(cat "$tmp/worker.log")"
(($(grep -c '^usr1' "$SIGNALS") == 2)) || fail "worker: the 2 ranks did not both get SIGUSR1: $(cat "$SIGNALS")"
grep -q "the ranks of this pod have ended" "$tmp/worker.log" || fail "worker: did not wait for the ranks"
echo "ok: worker: SIGTERM -> SIGUSR1 to each rank, waits for them, stops the daemon, exit 0"

# 6. The real thing: mpirun -np 2 trainguard under the launcher entrypoint.
bin=${TG_TEST_BIN:?TG_TEST_BIN is not set: run through ctest}
if ! "$bin" train --help 2>&1 | grep -q "'auto'"; then
  echo "note: $bin has no --resume auto (the preemption support is not in this build): part 6 not run"
  echo "entrypoint checks passed (without the real preemption)"
  exit 0
fi
cd "$tmp"
job=("$launch" mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np 2
  "$bin" train --dataset synthetic --synthetic-samples 4000 --synthetic-classes 5 --width 0.25 --threads 1
  --epochs 2 --no-eval --log-every 1 --checkpoint "$tmp/run.ckpt" --resume auto --run-config "" --label-report "")
# In a process group of its own (setsid execs it: $! is the launcher), so that cleanup can end
# mpirun and the ranks too.
setsid "${job[@]}" >"$tmp/job1.log" 2>&1 &
pid=$!
groups+=("$pid")
wait_for_text "$tmp/job1.log" 120 "step 3/" || fail "trainguard did not reach step 3: $(tail -20 "$tmp/job1.log")"
kill -TERM "$pid"
start=$SECONDS
wait_code "$pid"
[[ $code == 12 ]] || fail "SIGTERM to the launcher entrypoint: exit $code, expected 12: $(tail -30 "$tmp/job1.log")"
((SECONDS - start < 60)) || fail "the preempted job took $((SECONDS - start)) s to end"
[[ -s $tmp/run.ckpt ]] || fail "exit 12 without a checkpoint at $tmp/run.ckpt"
grep -q "sending SIGUSR1 to mpirun" "$tmp/job1.log" || fail "the launcher entrypoint did not say it forwarded the stop"
echo "ok: mpirun + trainguard: SIGTERM to the launcher entrypoint -> checkpoint and exit 12 in $((SECONDS - start)) s"
code=0
"${job[@]}" >"$tmp/job2.log" 2>&1 || code=$?
[[ $code == 0 ]] || fail "the restarted job (same command) exited $code: $(tail -30 "$tmp/job2.log")"
first=$(grep -m1 -o "epoch [0-9]*/2 step [0-9]*/" "$tmp/job2.log" || true)
if grep -q "starting afresh" "$tmp/job2.log" || [[ -z $first || $first == "epoch 1/2 step 1/" ]]; then
  fail "the restarted job did not resume from the checkpoint (first step: '$first'): $(head -30 "$tmp/job2.log")"
fi
echo "ok: mpirun + trainguard: the same command resumed from the checkpoint (first step: $first) and finished (exit 0)"
echo "entrypoint checks passed"
