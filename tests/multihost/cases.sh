#!/usr/bin/env bash
# Multi-host cases of trainguard on simulated hosts (hosts.sh: network namespaces on a bridge, each
# with its own host name, /tmp and cgroup); ctest runs one case per test:
#   cases.sh CASE     (TG_TEST_BIN: path of trainguard, TG_DIST_TESTS: of dist_tests; set by ctest)
# Exit 77 (skipped) where hosts cannot be made (not root). Each case prints a "measured:" line
# with its fault-to-exit times (bench/RESULTS.md collects them). Every wait is bounded.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=hosts.sh
source "$HERE/hosts.sh"

CASE=${1:?usage: cases.sh CASE}
BIN=${TG_TEST_BIN:-$REPO/build/launcher/trainguard}
[ -x "$BIN" ] || mh_fail "no trainguard executable at $BIN (set TG_TEST_BIN)"
DIST=${TG_DIST_TESTS:-$REPO/build/tests/multirank/dist_tests}
why=$(mh_prerequisites) || { echo "skipped: $why"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset TRAINGUARD_THREADS
# The Slurm cases' --step-timeout; the others run with the default flags (a silent host ends
# every wait within seconds whatever --step-timeout is).
STEP_TIMEOUT=5
# Every rank gone within this many seconds of a cut (docs/multi-host.md).
CUT_TO_GONE_S=15
# Each rank logs into its own host's /tmp (--log-dir) and writes its metrics textfile there too.
OUTPUTS=(--threads 1 --log-dir /tmp/tg-logs --metrics-textfile /tmp/tg-metrics)
# A run that lasts long enough to be cut: synthetic data, a quarter-width model.
TRAIN=(train --dataset synthetic --synthetic-samples 60000 --width 0.25 --epochs 3 "${OUTPUTS[@]}")

# setup_hosts N: mh_setup N, then the programs the hosts run placed where they see them: each
# host has a /tmp of its own, so a clone under /tmp (as a CI checkout may be) is invisible there.
# BIN, DIST and SLURM_SCRIPTS then name the copies in MH_DIR (hard links where possible).
setup_hosts() {
  mh_setup "$1"
  mkdir -p "$MH_DIR/bin"
  local program
  for program in "$BIN" "$DIST"; do
    [ -x "$program" ] || continue
    ln -f "$program" "$MH_DIR/bin/" 2>/dev/null || cp "$program" "$MH_DIR/bin/" || mh_fail "cannot copy $program"
  done
  BIN=$MH_DIR/bin/$(basename "$BIN")
  DIST=$MH_DIR/bin/$(basename "$DIST")
  # slurm/ sources ../recovery/: both are copied side by side.
  mkdir -p "$MH_DIR/scripts" && cp -r "$REPO/slurm" "$REPO/recovery" "$MH_DIR/scripts/" || mh_fail "cannot copy $REPO/slurm"
  SLURM_SCRIPTS=$MH_DIR/scripts/slurm
}

# now: seconds since the epoch, with fractions.
now() { date +%s.%N; }
# since T: seconds from T to now, one decimal.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# log_of HOST RANK: the path, seen from here, of the log file RANK writes in HOST's own /tmp.
log_of() { printf '%s/tmp-%s/tg-logs/rank%s.log' "$MH_DIR" "$1" "$2"; }
# textfile_of HOST RANK: the path of RANK's metrics textfile in HOST's own /tmp.
textfile_of() { printf '%s/tmp-%s/tg-metrics/trainguard_trainguard_rank%s.prom' "$MH_DIR" "$1" "$2"; }

# expect_in FILE TEXT WHAT: FILE contains the fixed string TEXT.
expect_in() {
  grep -qF -- "$2" "$1" 2>/dev/null || {
    printf -- '--- %s:\n' "$1" >&2
    tail -n 20 "$1" >&2 2>/dev/null
    mh_fail "$3: '$2' not in $1"
  }
}

# wait_for_line FILE REGEX SECONDS WHAT: returns once FILE has a line matching the extended
# REGEX; fails after SECONDS.
wait_for_line() {
  local deadline=$((SECONDS + $3))
  until grep -qE -- "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || {
      printf -- '--- %s:\n' "$1" >&2
      tail -n 25 "$1" >&2 2>/dev/null
      mh_fail "$4: '$2' did not appear in $1 within $3 s"
    }
    sleep 0.2
  done
}

# trainguard_pids: the pids of trainguard processes (ranks, not mpirun) on every host.
trainguard_pids() {
  local h pid
  for ((h = 1; h <= MH_N; h++)); do
    for pid in $(mh_pids "h$h"); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = trainguard ] && echo "$pid"
    done
  done
}

# wait_all_gone SECONDS WHAT: returns once no trainguard rank runs on any host; fails after SECONDS,
# showing the end of every rank's log.
wait_all_gone() {
  local deadline=$((SECONDS + $1)) log
  while [ -n "$(trainguard_pids)" ]; do
    if ((SECONDS >= deadline)); then
      for log in "$MH_DIR"/tmp-h*/tg-logs/rank*.log; do
        printf -- '--- %s:\n' "$log" >&2
        tail -n 8 "$log" >&2
      done
      mh_fail "$2: trainguard still runs after $1 s (pids $(trainguard_pids | tr '\n' ' '))"
    fi
    sleep 0.2
  done
}

# start_mpirun NAME ARGS...: starts `mpirun <hosts> trainguard ARGS` on h1 in the background
# (output in $MH_DIR/NAME.{out,err}, pid in MPIRUN_PID), with each host's metrics textfile folder
# made (node_exporter's would exist).
start_mpirun() {
  local name=$1 args h
  shift
  for ((h = 1; h <= MH_N; h++)); do mkdir -p "$MH_DIR/tmp-h$h/tg-metrics"; done
  mapfile -t args < <(mh_mpirun_args 1)
  mh_run h1 mpirun "${args[@]}" -x OMP_NUM_THREADS=1 "$BIN" "$@" >"$MH_DIR/$name.out" 2>"$MH_DIR/$name.err" &
  MPIRUN_PID=$!
}

# end_mpirun WHAT: mpirun waits for the daemon of a host it cannot reach, for ever; docs/multi-host.md
# says to end it with two SIGTERMs (its "terminate now"), as slurm/job.sh does. It must be gone 5 s later.
end_mpirun() {
  local pid
  for pid in $(mh_pids h1); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = mpirun ] || continue
    kill -TERM "$pid"
    sleep 0.5
    kill -TERM "$pid" 2>/dev/null
  done
  local deadline=$((SECONDS + 5))
  while kill -0 "$MPIRUN_PID" 2>/dev/null; do
    ((SECONDS < deadline)) || mh_fail "$1: mpirun still runs 5 s after two SIGTERMs"
    sleep 0.1
  done
}

# cut_in_phase HOSTS CUT PHASE_REGEX ARGS...: runs `trainguard ARGS` on HOSTS hosts, cuts host
# CUT once rank 0 (the cut host's rank, with TRIGGER=cut-host) has logged a line matching
# PHASE_REGEX, and checks that every rank is gone within CUT_TO_GONE_S with the stall
# code, that the connected ranks name the cut rank and its host, that the cut rank says on its
# own host that it lost the others, and that the textfiles of both sides say the same.
cut_in_phase() {
  local hosts=$1 cut=$2 phase=$3 r cut_rank t0 gone
  shift 3
  setup_hosts "$hosts"
  cut_rank=$((${cut#h} - 1))
  start_mpirun cut "$@"
  local trigger
  trigger=$(log_of h1 0)
  [ "${TRIGGER:-}" != cut-host ] || trigger=$(log_of "$cut" "$cut_rank")
  wait_for_line "$trigger" "$phase" 120 "the run never reached '$phase'"
  mh_cut "$cut"
  t0=$(now)
  wait_all_gone "$CUT_TO_GONE_S" "after cutting $cut"
  gone=$(since "$t0")
  for ((r = 0; r < hosts; r++)); do
    expect_in "$(log_of "h$((r + 1))" "$r")" "exiting with code 11" "rank $r's exit"
    if ((r == cut_rank)); then
      expect_in "$(log_of "h$((r + 1))" "$r")" "on host $cut, lost contact with rank 0" "the cut rank's verdict"
      expect_in "$(textfile_of "h$((r + 1))" "$r")" 'trainguard_peer_silent{' "the cut rank's metrics"
      expect_in "$(textfile_of "h$((r + 1))" "$r")" 'peer_host="h1",peer_rank="0"' "the cut rank's metrics"
    else
      expect_in "$(log_of "h$((r + 1))" "$r")" "rank $cut_rank (host $cut) silent for" "rank $r's verdict"
      expect_in "$(textfile_of "h$((r + 1))" "$r")" "peer_host=\"$cut\",peer_rank=\"$cut_rank\"" "rank $r's metrics"
    fi
  done
  grep -qi "debugger\|py-spy\|gdb" "$MH_DIR"/tmp-h*/tg-logs/*.log && mh_fail "a message sends the user to a debugger"
  end_mpirun "after cutting $cut"
  echo "measured: $CASE: $hosts hosts, $cut cut in '$phase': every trainguard process gone ${gone} s after the cut"
}

# slurm_submit LAUNCHER: submits slurm/trainguard-cpu.sbatch over 2 nodes (one task each) under
# LAUNCHER (srun or mpirun) and returns once it trains; sets JOB, OUT (its output) and RUN (its
# ranks' log folder).
slurm_submit() {
  setup_hosts 2
  mh_slurm_start
  JOB=$(cd "$MH_DIR" && TG_BIN=$BIN TG_LAUNCHER=$1 TG_MAX_FAILURES=1 \
    sbatch --parsable -N2 --ntasks-per-node=1 --output="$MH_DIR/job-%j.out" "$SLURM_SCRIPTS/trainguard-cpu.sbatch" \
    --dataset synthetic --synthetic-samples 60000 --width 0.25 --epochs 3 --step-timeout "$STEP_TIMEOUT") ||
    mh_fail "sbatch was refused"
  JOB=${JOB%%;*}
  OUT=$MH_DIR/job-$JOB.out
  RUN=$MH_DIR/trainguard-runs/trainguard-cpu-$JOB/logs/run1
  wait_for_line "$RUN/rank0.log" "step 50/" 120 "job $JOB never trained"
}

# slurm_cut LAUNCHER: slurm/trainguard-cpu.sbatch over 2 nodes (one task each) under LAUNCHER
# (srun or mpirun); h2 is cut once the job trains. The job must end within 60 s of the cut with
# trainguard's stall code (11) and the requeue decision for it, the cut rank's verdict in its log.
slurm_cut() {
  local launcher=$1 t0 ended
  slurm_submit "$launcher"
  mh_cut h2
  t0=$(now)
  wait_for_line "$OUT" "\] $launcher exited " 60 "job $JOB's launcher after the cut"
  ended=$(since "$t0")
  expect_in "$OUT" "$launcher exited 11 (stall: a rank did not arrive within --step-timeout): requeue" "the exit line"
  expect_in "$RUN/rank0.log" "rank 1 (host h2) silent for" "rank 0's verdict"
  expect_in "$RUN/rank1.log" "on host h2, lost contact with rank 0" "the cut rank's verdict"
  echo "measured: $CASE: Slurm job over h1 h2 ($launcher), h2 cut in a step: the launcher returned ${ended} s after the cut"
}

# recovery_submit HOSTS [VAR=VALUE...] -- [TRAINGUARD ARGS...]: HOSTS simulated hosts under
# Slurm, slurm/trainguard-cpu.sbatch over all of them (one task each, srun) with the settings
# VAR=VALUE and a checkpoint every 20 steps; returns once run 1 has trained past step 30. Sets
# JOB, OUT (its output), RUN_DIR (its run folder) and LOGS (the runs' log folders' parent).
recovery_submit() {
  local hosts=$1 settings=()
  shift
  while (($#)) && [ "$1" != -- ]; do settings+=("$1"); shift; done
  (($#)) && shift
  setup_hosts "$hosts"
  mh_slurm_start
  JOB=$(cd "$MH_DIR" && env TG_BIN="$BIN" TG_LAUNCHER=srun TG_LAUNCHER_WAIT=3 "${settings[@]}" \
    sbatch --parsable -N"$hosts" --ntasks-per-node=1 --output="$MH_DIR/job-%j.out" "$SLURM_SCRIPTS/trainguard-cpu.sbatch" \
    "${RECOVERY_TRAIN[@]}" "$@") || mh_fail "sbatch was refused"
  JOB=${JOB%%;*}
  OUT=$MH_DIR/job-$JOB.out
  RUN_DIR=$MH_DIR/trainguard-runs/trainguard-cpu-$JOB
  LOGS=$RUN_DIR/logs
  wait_for_line "$LOGS/run1/rank0.log" "epoch 1/1 step 3[0-9]/" 180 "job $JOB never trained past step 30"
}
# A job to cut: 12,000 synthetic samples, one epoch of 63 steps on 3 ranks, a line every step.
RECOVERY_TRAIN=(--dataset synthetic --synthetic-samples 12000 --width 0.25 --epochs 1 --threads 1
  --step-timeout "$STEP_TIMEOUT" --checkpoint-every 20 --log-every 1)

# first_step_of RUN LIMIT WHAT: waits (LIMIT s) for run RUN's rank 0 to log a step; prints the
# seconds from T0 to then.
first_step_of() {
  wait_for_line "$LOGS/run$1/rank0.log" " step [0-9]+/[0-9]+ loss" "$2" "$3"
  since "$T0"
}

# expect_job_done LIMIT: the job ends COMPLETED, exit 0, within LIMIT s, never requeued.
expect_job_done() {
  local deadline=$((SECONDS + $1)) state
  while :; do
    state=$(scontrol show job "$JOB" | grep -o 'JobState=[A-Z_]*')
    [ "$state" = JobState=COMPLETED ] && break
    [[ $state =~ FAILED|CANCELLED|TIMEOUT|PENDING ]] && mh_fail "job $JOB: $state; output: $(tail -n 30 "$OUT")"
    ((SECONDS < deadline)) || mh_fail "job $JOB did not complete within $1 s: $state; $(tail -n 20 "$OUT")"
    sleep 1
  done
  scontrol show job "$JOB" | grep -q 'Restarts=0' || mh_fail "job $JOB went through a requeue"
  expect_in "$OUT" "srun exited 0 (success): ok" "the job's end"
}

case "$CASE" in
  slurm_spare_takes_over)
    # 3 hosts train, h4 is a spare (TG_SPARE_NODES=1); h2 is cut in a step. The job goes on in
    # the same allocation on h1, h3 and h4, without a requeue, and ends with the parameters of
    # a run resumed by hand from the same checkpoint on those hosts.
    recovery_submit 4 TG_SPARE_NODES=1 --
    mh_cut h2
    T0=$(now)
    wait_for_line "$OUT" "restart in place after exit" 60 "no restart in place"
    cp "$RUN_DIR/trainguard.ckpt" "$MH_DIR/resumed-from.ckpt" || mh_fail "no checkpoint to resume from"
    expect_in "$OUT" "node h2 excluded from the rest of the job: its ranks went silent" "the exclusion"
    expect_in "$OUT" "without h2, h4 taking over; 3 rank(s) on h1,h3,h4" "the restart line"
    first=$(first_step_of 2 60 "run 2 never trained")
    expect_job_done 300
    expect_in "$OUT" "run2 trains again: its first step came" "the time to the first step"
    expect_in "$OUT" "; it continued from global step " "where run 2 continued"
    expect_in "$LOGS/run2/rank0.log" "resuming from" "run 2's resume line"
    # The same resume by hand, on the same hosts, from the copy of the checkpoint.
    cp "$MH_DIR/resumed-from.ckpt" "$MH_DIR/by-hand.ckpt"
    mapfile -t args < <(mh_mpirun_args 1)
    args[1]=h1:1,h3:1,h4:1
    mh_run h1 timeout 300 mpirun "${args[@]}" -x OMP_NUM_THREADS=1 "$BIN" train "${RECOVERY_TRAIN[@]}" \
      --checkpoint "$MH_DIR/by-hand.ckpt" --resume yes >"$MH_DIR/by-hand.out" 2>&1 ||
      mh_fail "the run resumed by hand failed: $(tail -n 20 "$MH_DIR/by-hand.out")"
    "$TG_TORCH_PYTHON" -W ignore "$REPO/tests/e2e/same_tensors.py" "$RUN_DIR/trainguard.ckpt" "$MH_DIR/by-hand.ckpt" ||
      mh_fail "the job's final parameters differ from those of the run resumed by hand"
    echo "measured: $CASE: 3 hosts + 1 spare, h2 cut in a step: ${first} s from the cut to the first step of run 2 (on h1,h3,h4)"
    ;;
  slurm_shrink)
    # 3 hosts, no spare, TG_MIN_NODES=2; every process of h3 killed in a step. The job goes on
    # with 2 ranks from the checkpoint's sample, in the same allocation.
    recovery_submit 3 TG_MIN_NODES=2 --
    mh_kill h3
    T0=$(now)
    wait_for_line "$OUT" "restart in place after exit" 60 "no restart in place"
    expect_in "$OUT" "node h3 excluded from the rest of the job" "the exclusion"
    expect_in "$OUT" "without h3; 2 rank(s) on h1,h2" "the restart line"
    first=$(first_step_of 2 60 "run 2 never trained")
    expect_in "$LOGS/run2/rank0.log" "written by 3 ranks, resumed on 2" "run 2's resume line"
    expect_job_done 300
    echo "measured: $CASE: 3 hosts, h3 killed in a step: ${first} s from the kill to the first step of run 2 (on h1,h2)"
    ;;
  slurm_gpu_fault_excluded)
    # A GPU fault (exit 14, injected on the CPU) of h2 (rank 1) at step 40, with a spare: the
    # next step runs without h2, and Slurm says so.
    recovery_submit 3 TG_SPARE_NODES=1 -- --inject-fault gpu-fault:rank=1:step=40:host=h2
    wait_for_line "$OUT" "restart in place after exit 14" 60 "no restart in place after the GPU fault"
    expect_in "$OUT" "node h2 excluded from the rest of the job: GPU fault" "the exclusion"
    wait_for_line "$LOGS/run2/rank0.log" " step [0-9]+/[0-9]+ loss" 60 "run 2 never trained"
    # The job's steps as Slurm lists them ("JOB.N NODES"; not the batch step): the newest one.
    step_nodes=$(squeue -h -s -j "$JOB" -o '%i %N' | awk -v j="$JOB" '$1 ~ "^" j "\\.[0-9]+$" {print $2}' | sort | tail -n 1)
    [ "$step_nodes" = "h[1,3]" ] || mh_fail "the step after the GPU fault runs on '$step_nodes', not h[1,3]"
    expect_job_done 300
    echo "measured: $CASE: Slurm ran the step after the GPU fault on $step_nodes"
    ;;
  slurm_link_cut_srun)
    slurm_cut srun
    ;;
  slurm_link_cut_mpirun)
    slurm_cut mpirun
    ;;
  slurm_node_lost)
    # Every process of h2 (its slurmd, the step's slurmstepd, the rank) SIGKILLed under srun.
    slurm_submit srun
    mh_kill h2
    t0=$(now)
    wait_all_gone 10 "after killing h2"
    gone=$(since "$t0")
    wait_for_line "$OUT" "\] srun exited " 60 "job $JOB's srun after the loss of h2"
    ended=$(since "$t0")
    expect_in "$RUN/rank0.log" "rank 1 (host h2) silent for" "rank 0's verdict"
    expect_in "$OUT" "srun exited 11 (stall: a rank did not arrive within --step-timeout): requeue" "the exit line"
    echo "measured: $CASE: Slurm job over h1 h2 (srun), h2 lost: every rank gone ${gone} s, srun returned ${ended} s after the kill"
    ;;
  link_cut_step)
    cut_in_phase 3 h2 "step 50/" "${TRAIN[@]}"
    ;;
  link_cut_hub)
    # rank 0's host (where mpirun and the liveness hub run) cut: the others lose the hub.
    setup_hosts 2
    start_mpirun hub "${TRAIN[@]}"
    wait_for_line "$(log_of h1 0)" "step 50/" 120 "the run never started"
    mh_cut h1
    t0=$(now)
    wait_all_gone "$CUT_TO_GONE_S" "after cutting h1"
    gone=$(since "$t0")
    expect_in "$(log_of h2 1)" "on host h2, lost contact with rank 0" "rank 1's verdict"
    expect_in "$(log_of h2 1)" "rank 0 (host h1) silent for" "rank 1's verdict"
    expect_in "$(log_of h1 0)" "rank 1 (host h2) silent for" "rank 0's verdict"
    end_mpirun "after cutting h1"
    echo "measured: $CASE: 2 hosts, h1 (rank 0, mpirun) cut in a step: every trainguard process gone ${gone} s after the cut"
    ;;
  link_cut_checkpoint)
    # h2's rank sleeps after step 20 while the others enter the checkpoint after it (the
    # agreement on the step and rank 0's write); h2 is cut meanwhile.
    TRIGGER=cut-host cut_in_phase 3 h2 "sleeping .* after step 20" "${TRAIN[@]}" --checkpoint /tmp/tg.ckpt \
      --checkpoint-every 20 --inject-fault sleep:rank=1:step=20:seconds=6:when=after
    expect_in "$(log_of h1 0)" "stall in the checkpoint after step 20" "rank 0's verdict names the phase"
    ;;
  link_cut_evaluation)
    # The evaluation of the 10,000 Fashion-MNIST test images by the full-width model, after an
    # epoch of a few steps: cut once rank 0 logged the epoch's last step ("step N/N").
    cut_in_phase 3 h3 'step ([0-9]+)/\1 ' train --dataset fashion-mnist --train-samples 600 --width 1 --epochs 1 \
      --log-every 1 "${OUTPUTS[@]}"
    ;;
  node_lost)
    # Every process of h2 SIGKILLed: their sockets close, so everyone hears it at once.
    setup_hosts 2
    start_mpirun lost "${TRAIN[@]}"
    wait_for_line "$(log_of h1 0)" "step 50/" 120 "the run never started"
    mh_kill h2
    t0=$(now)
    wait_all_gone 10 "after killing h2"
    gone=$(since "$t0")
    deadline=$((SECONDS + 10))
    while kill -0 "$MPIRUN_PID" 2>/dev/null; do
      ((SECONDS < deadline)) || mh_fail "mpirun did not return within 10 s of the loss of h2"
      sleep 0.2
    done
    returned=$(since "$t0")
    expect_in "$MH_DIR/lost.err" "h2" "mpirun's report names the lost host"
    echo "measured: $CASE: 2 hosts, h2 lost: every trainguard process gone ${gone} s, mpirun returned ${returned} s after the kill"
    ;;
  slow_host)
    # h2 throttled to a fifth of a CPU from the start: the job finishes, rank 0 names rank 1
    # (host h2) as the straggler, and the ranks' ratios say the same.
    setup_hosts 3
    mh_slow h2 20
    start_mpirun slow train --dataset synthetic --synthetic-samples 6000 --width 0.25 --epochs 2 "${OUTPUTS[@]}"
    deadline=$((SECONDS + 240))
    while kill -0 "$MPIRUN_PID" 2>/dev/null; do
      ((SECONDS < deadline)) || mh_fail "the slowed job did not finish within 240 s"
      sleep 0.5
    done
    wait "$MPIRUN_PID" || mh_fail "the slowed job failed: $(tail -n 20 "$MH_DIR/slow.err")"
    expect_in "$(log_of h1 0)" "straggler: rank 1 (host h2) takes" "the straggler line"
    grep -q "straggler: rank [02]" "$(log_of h1 0)" && mh_fail "a rank on an unslowed host was named a straggler"
    ratio1=$(sed -n 's/^trainguard_step_compute_ratio{.*} //p' "$(textfile_of h2 1)")
    ratio0=$(sed -n 's/^trainguard_step_compute_ratio{.*} //p' "$(textfile_of h1 0)")
    awk -v a="$ratio1" -v b="$ratio0" 'BEGIN { exit !(a >= 1.5 && b < 1.5) }' ||
      mh_fail "compute ratios: rank 1 (slowed) $ratio1, rank 0 $ratio0"
    echo "measured: $CASE: h2 at 20% of a CPU: $(grep -o 'straggler: .*' "$(log_of h1 0)" | head -n 1)"
    ;;
  straggler_onset_2hosts | straggler_onset_3hosts)
    # Default flags. h2 is stopped 60% of the time from the middle of the epoch: rank 0 names
    # rank 1 (host h2) a straggler within 100 steps and 60 s, once; h2 back at full speed, rank
    # 0 says it recovered. No other rank is named.
    hosts=${CASE#straggler_onset_}
    hosts=${hosts%hosts}
    setup_hosts "$hosts"
    start_mpirun onset train --dataset synthetic --synthetic-samples 40000 --width 0.25 --epochs 1 --log-every 1 \
      "${OUTPUTS[@]}"
    log=$(log_of h1 0)
    wait_for_line "$log" "step 60/" 120 "the run never reached step 60"
    # SIGSTOP/SIGCONT 60% of each 100 ms: a cgroup quota set on running processes has been seen
    # to leave them at full speed here.
    MH_SLOW_METHOD=signals mh_slow h2 40
    t0=$(now)
    slowed_at=$(sed -nE 's/.* step ([0-9]+)\/[0-9]+ .*/\1/p' "$log" | tail -n 1)
    wait_for_line "$log" "straggler: rank 1 \(host h2\)" 60 "no straggler named within 60 s of the slowdown"
    named_after=$(since "$t0")
    named_step=$(sed -nE 's/.*straggler: rank 1 \(host h2\).*, steps [0-9]+-([0-9]+)\).*/\1/p' "$log" | head -n 1)
    [ -n "$named_step" ] && ((named_step - slowed_at <= 100)) ||
      mh_fail "named at step '$named_step', slowed at step $slowed_at: more than 100 steps"
    mh_unslow h2
    wait_for_line "$log" "straggler recovered: rank 1 \(host h2\)" 60 "no recovery said within 60 s"
    [ "$(grep -c "straggler: rank 1 (host h2)" "$log")" = 1 ] || mh_fail "rank 1 was named more than once"
    grep -q "straggler: rank [02]" "$log" && mh_fail "a rank on an unslowed host was named a straggler"
    wait "$MPIRUN_PID" || mh_fail "the job failed: $(tail -n 20 "$MH_DIR/onset.err")"
    echo "measured: $CASE: h2 stopped 60% of the time from step $slowed_at, named ${named_after} s later at step $named_step:" \
      "$(grep -o 'straggler: .*' "$log" | head -n 1)"
    ;;
  store_bootstrap)
    # Rank 0's host name resolves to an address on an interface the other host cannot reach (a
    # management network, say): the store must still be found through rank 0's other addresses.
    [ -x "$DIST" ] || mh_fail "no dist_tests executable at $DIST (set TG_DIST_TESTS)"
    setup_hosts 2
    # (a veth pair inside h1: this kernel has no dummy interfaces)
    { ip -n "$(mh_ns h1)" link add mgmt0 type veth peer name mgmt1 && ip -n "$(mh_ns h1)" addr add 192.0.2.1/24 dev mgmt0 &&
      ip -n "$(mh_ns h1)" link set mgmt0 up && ip -n "$(mh_ns h1)" link set mgmt1 up; } ||
      mh_fail "could not give h1 a second interface"
    sed -i 's/^.*[[:space:]]h1$/192.0.2.1 h1/' "$MH_DIR/hosts"
    [ "$(mh_run h2 getent hosts h1 | awk '{print $1}')" = 192.0.2.1 ] || mh_fail "h1 does not resolve to 192.0.2.1"
    mapfile -t args < <(mh_mpirun_args 1)
    # (the tests of --store-port offer 127.0.0.1 on purpose: one host only)
    mh_run h1 timeout 120 mpirun "${args[@]}" "$DIST" \
      --gtest_filter='StoreBootstrap.EveryRankReachesRankZerosStoreAndSeesTheOthersKeys:StoreBootstrap.FirstReachable*' \
      >"$MH_DIR/store.out" 2>&1 ||
      { cat "$MH_DIR/store.out" >&2; mh_fail "the store bootstrap across hosts failed"; }
    expect_in "$MH_DIR/store.out" "[  PASSED  ] 2 tests" "the store tests"
    # trainguard itself: its liveness hub is reached the same way (a job that trains to the end).
    start_mpirun store train --dataset synthetic --synthetic-samples 600 --width 0.25 --threads 1 --epochs 1
    wait "$MPIRUN_PID" || mh_fail "trainguard across hosts failed: $(tail -n 20 "$MH_DIR/store.err")"
    ;;
  *)
    mh_fail "unknown case $CASE"
    ;;
esac
echo "PASS: $CASE"
