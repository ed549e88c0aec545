#!/usr/bin/env bash
# The Kubernetes entrypoints (ctest k8s.entrypoints): k8s/trainguard-launch.sh (the MPIJob
# launcher's: its stop forwarding and its restarts as recovery/restart_policy.sh decides) and
# k8s/trainguard-worker.sh (the workers'), run here with stand-in children, then the launcher's
# with the real mpirun and trainguard ($TG_TEST_BIN): SIGTERM to it must end the job with a
# checkpoint and exit 12, and the same command must then resume and finish.
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
  # -x: the launcher sources recovery/restart_policy.sh, which is checked with it.
  shellcheck -x "$launch" "$worker" || fail "shellcheck reports the findings above"
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
# A stand-in for mpirun over several runs: run N (the Nth line of $RUNS, to which each run adds
# its TRAINGUARD_RESTART_COUNT) exits with the Nth argument, or the last one after that. A failing
# run writes a fingerprint naming its run to TG_LAUNCH_FAILURE_FILE, when that is set, so that no
# two failures are the same.
cat >"$tmp/runs-of" <<'EOF'
#!/usr/bin/env bash
echo "${TRAINGUARD_RESTART_COUNT-unset}" >>"$RUNS"
n=$(wc -l <"$RUNS")
codes=("$@")
code=${codes[n - 1]:-${codes[-1]}}
if [[ -n ${TG_LAUNCH_FAILURE_FILE:-} ]] && ((code != 0)); then
  echo "exit=$code kind=test step=$n" >"$TG_LAUNCH_FAILURE_FILE"
fi
exit "$code"
EOF
chmod +x "$tmp/fake-rank" "$tmp/fake-orted" "$tmp/runs-of"
export SIGNALS=$tmp/signals RUNS=$tmp/runs TG_LAUNCH_STATE_DIR=$tmp/state TG_LAUNCH_WAIT_S=0
marker=$tmp/state/permanent-failure

# launch [VAR=value...] COMMAND...: runs COMMAND (the launcher) with the settings; its exit status
# goes to `code`, its log to $tmp/launch.log.
launch() {
  code=0
  env "$@" 2>"$tmp/launch.log" || code=$?
}
# Starts a case: no state, no runs, no fingerprint yet.
fresh() {
  rm -rf "$tmp/state" "$tmp/policy" "$tmp/state-a" "$tmp/state-b" "$tmp/run.ckpt.failure"
  : >"$RUNS"
}
# The TRAINGUARD_RESTART_COUNT of each run so far, space-separated.
runs_seen() { paste -sd' ' "$RUNS"; }
# The number of restart lines in the last launcher's log.
restarts() { grep -c "restarting in place" "$tmp/launch.log" || true; }
# The failures the policy has counted in folder $1.
failures_in() { cat "$1/failures" 2>/dev/null || echo 0; }
log() { cat "$tmp/launch.log"; }

# 1. SIGTERM to the launcher becomes one SIGUSR1 to its child; the child's 12 is the exit code,
#    and the pod that is going away does not run it again.
fresh
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
(($(grep -c '^started' "$SIGNALS") == 1 && $(restarts) == 0)) || fail "launcher: restarted after SIGTERM: $(log)"
[[ ! -e $marker ]] || fail "launcher: exit 12 (preempted) was marked permanent"
[[ $(failures_in "$tmp/state") == 0 ]] || fail "launcher: a preemption spent a failure"
echo "ok: launcher: SIGTERM -> SIGUSR1 to mpirun, exit 12, not run again in the pod being deleted"

# 2. A permanent code (7: labels) runs once and leaves the marker; the next start (a container
#    restart) exits 7 without running.
fresh
launch "$launch" "$tmp/runs-of" 7
[[ $code == 7 && -s $marker && $(runs_seen) == 0 ]] ||
  fail "launcher: exit 7 gave $code after runs '$(runs_seen)', marker: $(cat "$marker" 2>&1)"
launch "$launch" "$tmp/runs-of" 0
[[ $code == 7 && $(runs_seen) == 0 ]] || fail "launcher: after a permanent failure it ran again (exit $code)"
grep -q "ended the job with exit 7 (label validation failed)" "$tmp/launch.log" ||
  fail "launcher: no reason given: $(log)"
echo "ok: launcher: exit 7 is permanent: no restart, and the restarted container exits 7 at once"

# 3. Failures restart mpirun in place, each run with the next TRAINGUARD_RESTART_COUNT: two stalls
#    (different fingerprints) then success are one container run.
fresh
export TG_LAUNCH_FAILURE_FILE=$tmp/run.ckpt.failure
launch "$launch" "$tmp/runs-of" 11 11 0
[[ $code == 0 && $(runs_seen) == "0 1 2" ]] ||
  fail "launcher: 11 11 0 gave exit $code after runs '$(runs_seen)': $(log)"
[[ $(restarts) == 2 && $(failures_in "$tmp/state") == 2 && ! -e $marker ]] ||
  fail "launcher: 11 11 0: $(restarts) restart line(s), $(failures_in "$tmp/state") failure(s) counted: $(log)"
grep -q "a failure: restarting in place (restart 2 in this pod; left: 1 of TG_LAUNCH_MAX_FAILURES=3" \
  "$tmp/launch.log" || fail "launcher: the restart line does not say the restart and the budget: $(log)"
echo "ok: launcher: 11, 11, 0 -> two restarts in place (restart counts 0 1 2), exit 0, 2 failures spent"

# 3b. Planned stops (12 without SIGTERM: a worker pod deleted) restart in place for free.
fresh
launch "$launch" "$tmp/runs-of" 12 12 12 12 12 0
[[ $code == 0 && $(runs_seen) == "0 1 2 3 4 5" && $(restarts) == 5 ]] ||
  fail "launcher: 12 x5 then 0 gave exit $code after runs '$(runs_seen)': $(log)"
[[ $(failures_in "$tmp/state") == 0 ]] || fail "launcher: a planned stop spent a failure: $(log)"
grep -q "a planned stop (free): restarting in place (restart 5 in this pod; left: 3 of TG_LAUNCH_MAX_FAILURES=3" \
  "$tmp/launch.log" || fail "launcher: the restart line does not say it was free: $(log)"
echo "ok: launcher: 12 five times then 0 -> five free restarts in place, no failure spent"

# 3c. Failures beyond TG_LAUNCH_MAX_FAILURES end the job: the marker makes the next start exit.
fresh
launch TG_LAUNCH_MAX_FAILURES=2 "$launch" "$tmp/runs-of" 5
[[ $code == 5 && $(runs_seen) == "0 1 2" && -s $marker ]] ||
  fail "launcher: failures past TG_LAUNCH_MAX_FAILURES=2 gave exit $code after runs '$(runs_seen)': $(log)"
grep -q "2 failure(s) spent already, TG_LAUNCH_MAX_FAILURES=2): exhausted" "$tmp/launch.log" ||
  fail "launcher: the end of the failure budget was not said: $(log)"
launch TG_LAUNCH_MAX_FAILURES=2 "$launch" "$tmp/runs-of" 0
[[ $code == 5 && $(runs_seen) == "0 1 2" ]] || fail "launcher: after the budget was spent it ran again (exit $code)"
echo "ok: launcher: a third failure with TG_LAUNCH_MAX_FAILURES=2 ends the job; the restarted container exits at once"

# 3d. A failure that comes back with the previous failure's fingerprint ends the job.
fresh
# shellcheck disable=SC2016 # expanded by the inner shell
stall='echo "exit=11 kind=stall step=3" >"$0"; exit 11'
launch "$launch" bash -c "$stall" "$TG_LAUNCH_FAILURE_FILE"
[[ $code == 11 && $(restarts) == 1 && -s $marker ]] || fail "launcher: the same stall twice gave exit $code: $(log)"
grep -q "the failure the last restart was for came back: exit=11 kind=stall step=3): repeated" \
  "$tmp/launch.log" || fail "launcher: the repeated failure was not named: $(log)"
launch "$launch" "$tmp/runs-of" 0
[[ $code == 11 && ! -s $RUNS ]] || fail "launcher: after a repeated failure it ran again (exit $code)"
echo "ok: launcher: the same stall twice -> one restart, then repeated: the job ends"

# 3e. Past TG_LAUNCH_MAX_IN_PLACE a run ends the container with its code (Kubernetes restarts it);
#     the failures go on being counted in TG_LAUNCH_POLICY_DIR, by the restarted container and by
#     a new launcher pod, whose own in-place restarts start afresh.
fresh
pod_a=(TG_LAUNCH_POLICY_DIR="$tmp/policy" TG_LAUNCH_MAX_IN_PLACE=2 TG_LAUNCH_MAX_FAILURES=5
  TG_LAUNCH_POD_NAME=pod-a TG_LAUNCH_STATE_DIR="$tmp/state-a")
pod_b=("${pod_a[@]/pod-a/pod-b}")
pod_b=("${pod_b[@]/state-a/state-b}")
launch "${pod_a[@]}" "$launch" "$tmp/runs-of" 6
[[ $code == 6 && $(runs_seen) == "0 1 2" && $(failures_in "$tmp/policy") == 3 ]] ||
  fail "launcher: past TG_LAUNCH_MAX_IN_PLACE=2: exit $code after runs '$(runs_seen)'," \
    "$(failures_in "$tmp/policy") failure(s): $(log)"
[[ ! -e $tmp/state-a/permanent-failure && ! -e $tmp/state-a/failures ]] ||
  fail "launcher: past TG_LAUNCH_MAX_IN_PLACE=2: a marker, or the counters in the pod's folder"
grep -q "in-place restarts of this pod are used up (left: 2 of TG_LAUNCH_MAX_FAILURES=5 failure(s) for the job, 0 of" \
  "$tmp/launch.log" ||
  fail "launcher: the container restart was not explained: $(log)"
launch "${pod_a[@]}" "$launch" "$tmp/runs-of" 6
[[ $code == 6 && $(runs_seen) == "0 1 2 3" && $(failures_in "$tmp/policy") == 4 ]] ||
  fail "launcher: the restarted container: exit $code after runs '$(runs_seen)'," \
    "$(failures_in "$tmp/policy") failure(s): $(log)"
launch "${pod_b[@]}" "$launch" "$tmp/runs-of" 6
[[ $code == 6 && $(runs_seen) == "0 1 2 3 4 5" && -s $tmp/state-b/permanent-failure ]] ||
  fail "launcher: a new launcher pod: exit $code after runs '$(runs_seen)': $(log)"
grep -q "5 failure(s) spent already, TG_LAUNCH_MAX_FAILURES=5): exhausted" "$tmp/launch.log" ||
  fail "launcher: the new pod did not end the job: $(log)"
echo "ok: launcher: past TG_LAUNCH_MAX_IN_PLACE the container exits 6; the restarted container and a new pod count on"

# 3f. Without in-place restarts (TG_LAUNCH_MAX_IN_PLACE=0) each start is one run, as with
#     Kubernetes' restarts alone: failures (6, 137 SIGKILL, 1, 14) exit with their code, unmarked;
#     0 is 0; 13 (out of memory) is permanent; a GPU fault names its node; each run counts for
#     the next; the same stall after a container restart ends the job; 15 (bad samples set
#     aside) goes on even when its fingerprint repeats: each quarantine is new.
export TG_LAUNCH_MAX_IN_PLACE=0
fresh
for c in 6 137 1 0; do
  launch TG_LAUNCH_MAX_FAILURES=4 "$launch" "$tmp/runs-of" "$c"
  [[ $code == "$c" && ! -e $marker ]] || fail "launcher: exit $c gave $code or a marker: $(log)"
done
[[ $(runs_seen) == "0 1 2 3" ]] || fail "launcher: the runs of four starts were counted '$(runs_seen)'"
fresh
launch "$launch" "$tmp/runs-of" 13
[[ $code == 13 && -s $marker ]] || fail "launcher: exit 13 gave $code and no marker"
fresh
launch "$launch" "$tmp/runs-of" 14
[[ $code == 14 && ! -e $marker ]] || fail "launcher: exit 14 gave $code or a marker"
grep -q "cordon" "$tmp/launch.log" || fail "launcher: a GPU fault without advice: $(log)"
fresh
launch "$launch" bash -c "$stall" "$TG_LAUNCH_FAILURE_FILE"
[[ $code == 11 && ! -e $marker ]] || fail "launcher: a first stall was not retried ($code)"
launch "$launch" bash -c "$stall" "$TG_LAUNCH_FAILURE_FILE"
[[ $code == 11 && -s $marker ]] || fail "launcher: the same stall after a container restart was retried ($code)"
fresh
# shellcheck disable=SC2016 # expanded by the inner shell
quarantined='echo "exit=15 kind=quarantined step=2" >"$0"; exit 15'
for attempt in 1 2; do
  launch "$launch" bash -c "$quarantined" "$TG_LAUNCH_FAILURE_FILE"
  [[ $code == 15 && ! -e $marker ]] || fail "launcher: quarantine $attempt was not retried ($code)"
done
unset TG_LAUNCH_FAILURE_FILE TG_LAUNCH_MAX_IN_PLACE
fresh
echo "ok: launcher: container restarts alone: failures retried, 13 permanent, 14 with advice, runs counted," \
  "a repeated failure ends the job, 15 always retried"

# 3g. A setting that is not a whole number is refused, naming it.
launch TG_LAUNCH_MAX_FAILURES=three "$launch" "$tmp/runs-of" 0
if [[ $code != 2 || -s $RUNS ]] || ! grep -q "TG_LAUNCH_MAX_FAILURES=three" "$tmp/launch.log"; then
  fail "launcher: TG_LAUNCH_MAX_FAILURES=three gave exit $code: $(log)"
fi
echo "ok: launcher: a bad setting is refused (exit 2) and named"

# 3h. The ranks get the launcher's NCCL_*, TRAINGUARD_* and CUDA_* variables although mpirun
#     starts them over ssh: a real mpirun starts its daemon through a stand-in for ssh that, as
#     sshd does, gives it a bare environment. Other variables do not travel; a -x already on the
#     command line keeps its value; a command that is not mpirun is run as it is.
cat >"$tmp/bare-ssh" <<'EOF'
#!/usr/bin/env bash
# ssh HOST COMMAND as mpirun's plm_rsh_agent: the command runs here with sshd's bare environment.
while [[ $1 == -* ]]; do shift; done
shift
exec env -i PATH=/usr/bin:/bin HOME="$HOME" bash -c "$*"
EOF
chmod +x "$tmp/bare-ssh"
# shellcheck disable=SC2016 # expanded by the rank
show_env='for v in NCCL_IB_HCA NCCL_DEBUG TRAINGUARD_STORE_PORT CUDA_DEVICE_ORDER TRAINGUARD_RESTART_COUNT TG_OTHER; do
  echo "$v=${!v-unset}"; done >"$0"'
root_flag=()
[[ $(id -u) != 0 ]] || root_flag=(--allow-run-as-root)
fresh
launch NCCL_IB_HCA=mlx5_0,mlx5_1 NCCL_DEBUG=INFO TRAINGUARD_STORE_PORT=29400 CUDA_DEVICE_ORDER=PCI_BUS_ID \
  TG_OTHER=1 "$launch" mpirun "${root_flag[@]}" --mca plm_rsh_agent "$tmp/bare-ssh" -host remote-host:1 -np 1 \
  -x NCCL_DEBUG=WARN bash -c "$show_env" "$tmp/rank-env"
want="NCCL_IB_HCA=mlx5_0,mlx5_1 NCCL_DEBUG=WARN TRAINGUARD_STORE_PORT=29400 CUDA_DEVICE_ORDER=PCI_BUS_ID"
want+=" TRAINGUARD_RESTART_COUNT=0 TG_OTHER=unset"
[[ $code == 0 && $(paste -sd' ' "$tmp/rank-env" 2>/dev/null) == "$want" ]] ||
  fail "launcher: a rank started over ssh saw '$(paste -sd' ' "$tmp/rank-env" 2>&1)', expected '$want' (exit $code): $(log)"
launch TG_OTHER=1 TRAINGUARD_STORE_PORT=29400 "$launch" bash -c "$show_env" "$tmp/direct-env"
grep -qx "TRAINGUARD_STORE_PORT=29400" "$tmp/direct-env" || fail "launcher: a command that is not mpirun was changed"
echo "ok: launcher: a rank started over ssh gets the launcher's NCCL_*, TRAINGUARD_*, CUDA_* variables, nothing else"

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
