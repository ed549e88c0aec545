#!/usr/bin/env bash
# Slurm cases of slurm/*.sbatch on a throwaway single-node Slurm (harness.sh) that each case starts
# and always stops; ctest runs one case per test:
#   cases.sh CASE     (TG_TEST_BIN: path of trainguard; set by ctest)
# Exit 77 (skipped) where Slurm or root is missing. Every wait is bounded; a failure prints the
# job's record, the tail of its output and of the daemons' logs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=harness.sh
source "$HERE/harness.sh"

CASE=${1:?usage: cases.sh CASE}
export TG_BIN=${TG_TEST_BIN:-$REPO/build/launcher/trainguard}
[ -x "$TG_BIN" ] || fail "no trainguard executable at $TG_BIN (set TG_TEST_BIN)"
# A small run: 600 synthetic samples, 2 ranks, a quarter-width model (5 steps an epoch).
SMALL=(--dataset synthetic --synthetic-samples 600 --width 0.25 --epochs 1)
# The jobs' mpirun runs as root here.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset TRAINGUARD_THREADS
# What trainguard's rank 0 logs when it stops on request: the global step it checkpointed after.
STOP_STEP_SED='s/.*stopped on request after step ([0-9]+): checkpoint .*/\1/p'

# submit SCRIPT [SBATCH OPTIONS...] -- [TRAINGUARD ARGS...]: submits slurm/SCRIPT from $WORK
# (so runs go to $WORK/trainguard-runs) with its output in $WORK/job-<id>.out; sets JOB.
submit() {
  local script=$1 opts=()
  shift
  while (($#)) && [ "$1" != -- ]; do opts+=("$1"); shift; done
  (($#)) && shift
  JOB=$(cd "$WORK" && sbatch --parsable --output="$WORK/job-%j.out" "${opts[@]}" "$REPO/slurm/$script" "$@") ||
    fail "sbatch $script was refused"
  JOB=${JOB%%;*}
  say "submitted $script as job $JOB"
}

# release_requeued: $JOB was requeued; Slurm would hold it 120 s. Once it is pending and the node
# is idle (its first run cleaned up), it is started now. Started in the same second as slurmd
# revoked the first run's credential (1 s resolution), it would be refused ("Job credential
# revoked") and end FAILED: hence the 2 s pause.
release_requeued() {
  wait_job_state "$JOB" 30 PENDING
  local deadline=$((SECONDS + 30))
  until [ "$(sinfo -h -N -o '%T' | head -n 1)" = idle ]; do
    ((SECONDS < deadline)) || job_failure "$JOB" "the node did not become idle within 30 s of the requeue"
    sleep 0.2
  done
  sleep 2
  scontrol update JobId="$JOB" StartTime=now || fail "scontrol update JobId=$JOB StartTime=now failed"
  say "job $JOB requeued and released"
}

# out: the output file of $JOB.
out() { printf '%s/job-%s.out' "$WORK" "$JOB"; }

# wait_lines LIMIT PATTERN N: waits (LIMIT s at most) until the output of $JOB has N lines
# matching the extended regex PATTERN.
wait_lines() {
  local deadline=$((SECONDS + $1)) found
  while :; do
    found=$(grep -cE -- "$2" "$(out)" 2>/dev/null) || found=0
    ((found >= $3)) && return 0
    ((SECONDS < deadline)) || job_failure "$JOB" "job $JOB's output did not show $3 lines /$2/ within $1 s"
    sleep 0.3
  done
}

# expect_line PATTERN WHAT: the output of $JOB has a line matching the extended regex PATTERN.
expect_line() {
  grep -qE -- "$1" "$(out)" || job_failure "$JOB" "job $JOB: no $2 in its output (/$1/)"
}

# expect_job STATE EXIT_CODE RESTARTS: `scontrol show job` reports them for $JOB.
expect_job() {
  local state code restarts
  state=$(job_field "$JOB" JobState)
  code=$(job_field "$JOB" ExitCode)
  restarts=$(job_field "$JOB" Restarts)
  [ "$state $code $restarts" = "$1 $2 $3" ] ||
    job_failure "$JOB" "job $JOB: state $state, exit code $code, restarts $restarts; expected $1, $2, $3"
}

# expect_two_gpus_one_each LAUNCHER METRICS_JOB: both tasks saw both fake GPUs and took different
# ones: rank R (local rank R) the GPU of entry R, as trainguard's own local rank (the local_rank
# label of its metrics textfile, named after the job's metrics identity) says it does.
expect_two_gpus_one_each() {
  local rank prom
  for rank in 0 1; do
    expect_line "^\[task\] rank $rank local rank $rank on .*: GPU $rank \(entry $rank of CUDA_VISIBLE_DEVICES=0,1\)$" \
      "task line of rank $rank with GPU $rank"
    prom=$WORK/metrics/trainguard_$2_rank$rank.prom
    [ -f "$prom" ] || job_failure "$JOB" "no metrics textfile $prom"
    grep -q "local_rank=\"$rank\"" "$prom" || job_failure "$JOB" "$prom: rank $rank's local rank is not $rank under $1"
  done
}

# expect_trained RUN_DIR: the run wrote its checkpoint and its resolved configuration, with the
# threads Slurm gave each task (--cpus-per-task 1, through TRAINGUARD_THREADS).
expect_trained() {
  [ -s "$1/trainguard.ckpt" ] || job_failure "$JOB" "no checkpoint $1/trainguard.ckpt"
  grep -qE '^threads *= *1$' "$1/run.toml" || job_failure "$JOB" "$1/run.toml: threads is not 1"
  expect_line '^steps: 5, epoch 1' "training summary"
}

# (a) The CPU job, 2 tasks under srun --mpi=pmix, with the node's 2 fake GPUs: trains, exits 0.
case_cpu_job_trains() {
  TG_METRICS_TEXTFILE=$WORK/metrics submit trainguard-cpu.sbatch --gres=gpu:2 -- "${SMALL[@]}"
  wait_job_state "$JOB" 90 COMPLETED FAILED
  expect_job COMPLETED 0:0 0
  expect_line '^\[slurm job [0-9]+ .*\] srun exited 0 \(success\): ok$' "srun exit line"
  expect_two_gpus_one_each srun "trainguard-cpu-$JOB"
  expect_trained "$WORK/trainguard-runs/trainguard-cpu-$JOB"
}

# (h) Two jobs submitted together, one task each, into one textfile folder: each has its own
# metrics identity (<job name>-<job id>), so neither replaces the other's textfile, and each
# says at its clean end that it finished.
case_two_jobs_separate_metrics() {
  local jobs=() id prom
  for _ in 1 2; do
    TG_METRICS_TEXTFILE=$WORK/metrics submit trainguard-cpu.sbatch --ntasks-per-node=1 -- "${SMALL[@]}"
    jobs+=("$JOB")
  done
  for id in "${jobs[@]}"; do
    JOB=$id
    wait_job_state "$JOB" 120 COMPLETED FAILED
    expect_job COMPLETED 0:0 0
    prom=$WORK/metrics/trainguard_trainguard-cpu-${id}_rank0.prom
    [ -s "$prom" ] || job_failure "$JOB" "no textfile $prom of its own (folder: $(ls "$WORK/metrics"))"
    grep -q "^trainguard_steps_total{.*job=\"trainguard-cpu-$id\"" "$prom" || job_failure "$JOB" "$prom: not its job label"
    grep -q '^trainguard_finished_timestamp_seconds{' "$prom" || job_failure "$JOB" "$prom: no finished marker"
  done
  [ "$(find "$WORK/metrics" -name 'trainguard_*.prom' | wc -l)" = 2 ] || fail "not one textfile per job"
  say "jobs ${jobs[*]}: one textfile each, with their own job label and a finished marker"
}

# (d) The GPU script itself (its #SBATCH lines scaled down to this node) with the mpirun fallback
# and --device cpu: the same training, the same GPU choice from Open MPI's local rank.
case_gpu_script_mpirun() {
  TG_METRICS_TEXTFILE=$WORK/metrics TG_LAUNCHER=mpirun TG_DEVICE=cpu \
    submit trainguard.sbatch --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gres=gpu:2 --time=10 -- "${SMALL[@]}"
  wait_job_state "$JOB" 90 COMPLETED FAILED
  expect_job COMPLETED 0:0 0
  expect_line '^\[slurm job [0-9]+ .*\] mpirun -np 2 ' "mpirun command line"
  expect_line '^\[slurm job [0-9]+ .*\] mpirun exited 0 \(success\): ok$' "mpirun exit line"
  expect_two_gpus_one_each mpirun "trainguard-$JOB"
  expect_trained "$WORK/trainguard-runs/trainguard-$JOB"
}

# (b) SIGUSR1 to the batch shell once steps run: the ranks checkpoint and exit 12, the script
# requeues the job, and the second run resumes from the checkpoint's step and completes.
case_preempt_requeue_resume() {
  local run_dir stop_step second first epoch step per_epoch resumed
  submit trainguard-cpu.sbatch -- --dataset synthetic --synthetic-samples 600 --width 0.25 --epochs 3 \
    --batch-size 16 --log-every 1
  run_dir=$WORK/trainguard-runs/trainguard-cpu-$JOB
  wait_output "$JOB" "$(out)" 90 'epoch 1/3 step [0-9]+/'
  say "steps are running: scancel -b -s USR1 $JOB"
  scancel -b -s USR1 "$JOB" || fail "scancel -b -s USR1 $JOB failed"
  wait_output "$JOB" "$(out)" 60 'srun exited 12 '
  wait_output "$JOB" "$(out)" 20 '\] requeued: '
  release_requeued
  wait_job_state "$JOB" 120 COMPLETED FAILED
  expect_job COMPLETED 0:0 1
  expect_line '^\[slurm job [0-9]+ .*\] batch shell got SIGUSR1: asking the ranks to checkpoint' "forwarded USR1"
  expect_line '^\[slurm job [0-9]+ .*\] srun exited 12 \(preempted' "srun exit 12"
  expect_line '^\[slurm job [0-9]+ .*\] run 2 \(restart 1 of this job\)' "second run"
  expect_line '^\[slurm job [0-9]+ .*\] srun exited 0 \(success\): ok$' "successful end"
  [ -s "$run_dir/trainguard.ckpt" ] || job_failure "$JOB" "no checkpoint $run_dir/trainguard.ckpt"
  # The second run loaded the checkpoint: it did not start afresh, its first step is the one
  # after the checkpoint's, and it ran the rest of the 3 epochs.
  stop_step=$(sed -nE "$STOP_STEP_SED" "$(out)" | head -n 1)
  [ -n "$stop_step" ] || job_failure "$JOB" "the first run did not say after which step it checkpointed"
  second=$(sed -n '/\] run 2 (restart 1 /,$p' "$(out)")
  if grep -q 'starting afresh' <<<"$second"; then job_failure "$JOB" "the second run started afresh"; fi
  first=$(grep -m 1 -oE 'epoch [0-9]+/3 step [0-9]+/[0-9]+ loss' <<<"$second" || true)
  [[ $first =~ ^epoch\ ([0-9]+)/3\ step\ ([0-9]+)/([0-9]+) ]] ||
    job_failure "$JOB" "no progress line in the second run"
  epoch=${BASH_REMATCH[1]} step=${BASH_REMATCH[2]} per_epoch=${BASH_REMATCH[3]}
  resumed=$(((epoch - 1) * per_epoch + step))
  ((resumed == stop_step + 1)) ||
    job_failure "$JOB" "the second run began at global step $resumed ($first); the checkpoint was after step $stop_step"
  grep -q "^steps: $((3 * per_epoch - stop_step)), epoch 3" <<<"$second" ||
    job_failure "$JOB" "the second run did not run the remaining $((3 * per_epoch - stop_step)) steps"
  say "checkpointed after step $stop_step; the second run began at step $resumed and completed"
}

# (c) A planted bad label: label validation fails (exit 7) on both ranks, and the job is not
# requeued: FAILED with 7:0, no restart.
case_bad_label_not_requeued() {
  submit trainguard-cpu.sbatch -- "${SMALL[@]}" --plant-label 3=11 --synthetic-classes 11
  wait_job_state "$JOB" 90 COMPLETED FAILED
  expect_job FAILED 7:0 0
  expect_line "too_large label '11' at sample 3" "offender line"
  expect_line '^\[slurm job [0-9]+ .*\] srun exited 7 \(label validation failed\): fail \(a permanent failure' "exit line"
  if grep -qE 'requeued|run 2 ' "$(out)"; then job_failure "$JOB" "job $JOB was requeued after a label error"; fi
}

# (e) A rank killed at step 3 (a lost peer): srun ends the step (137), the job restarts in place
# (the node is alive: nothing is excluded), the rerun loses its peer the same way, and with
# TG_MAX_FAILURES=1 the job then ends FAILED with 137, never requeued.
case_lost_peer_restart_bounded() {
  TG_MAX_FAILURES=1 submit trainguard-cpu.sbatch -- "${SMALL[@]}" --inject-fault kill:rank=1:step=3
  wait_job_state "$JOB" 120 COMPLETED FAILED
  expect_job FAILED 137:0 0
  expect_line '^\[slurm job [0-9]+ .*\] srun exited 137 \(a task was killed by signal 9\): restart \(failure 1 of at most 1; in-place restart 1 of at most 5\)$' \
    "the restart of run 1"
  expect_line '^\[slurm job [0-9]+ .*\] run 2 \(restart 1 of this job\): 2 task\(s\) on ' "run 2 in the same allocation"
  expect_line '^\[slurm job [0-9]+ .*\] srun exited 137 \(a task was killed by signal 9\): exhausted \(1 failure\(s\) already, of at most 1\)$' \
    "the end of run 2"
  if grep -q 'excluded from the rest of the job' "$(out)"; then job_failure "$JOB" "the live node was excluded"; fi
}

# (f2) A failure that comes back at the same step after a restart in place (a stall at step 3:
# the rerun starts afresh, no checkpoint being written before it) ends the job at once, not
# after TG_MAX_FAILURES, and says so; the second run knows it is a restart.
case_repeated_failure_ends() {
  TG_MAX_FAILURES=5 submit trainguard-cpu.sbatch -- "${SMALL[@]}" --step-timeout 3 --fault-grace 3 \
    --inject-fault sleep:rank=1:step=3:seconds=30
  wait_job_state "$JOB" 150 COMPLETED FAILED
  expect_job FAILED 11:0 0
  expect_line '^\[slurm job [0-9]+ .*\] srun exited 11 \(stall.*\): restart \(failure 1 of at most 5; ' "restart of run 1"
  expect_line '^\[slurm job [0-9]+ .*\] not continued: the run met the failure the last restart was for again \(exit=11 kind=stall step=3\)$' \
    "the end of the loop"
  expect_line 'restart 1 of this job \(--restart-count\)' "the restart count in run 2"
}

# (g) --bad-samples quarantine, by restart as after a CUDA device-side assert: two planted labels
# out of range with validation off; each is set aside with exit 15 and the job restarts in place
# (free: TG_MAX_FAILURES=1 is not spent; the quarantine budget bounds these restarts), and the
# third run completes without them.
case_quarantine_restarted_in_place() {
  TG_MAX_FAILURES=1 submit trainguard-cpu.sbatch -- "${SMALL[@]}" --synthetic-classes 10 --num-classes 10 \
    --plant-label 3=11,200=12 --no-validate-labels --bad-samples quarantine --quarantine-by-restart --max-quarantined 5
  wait_job_state "$JOB" 180 COMPLETED FAILED
  expect_job COMPLETED 0:0 0
  [ "$(grep -cE '^\[slurm job [0-9]+ .*\] srun exited 15 \(bad samples set aside .*\): restart \(a planned stop \(free\); ' "$(out)")" = 2 ] ||
    job_failure "$JOB" "not 2 restarts in place with exit 15"
  expect_line '2 sample\(s\) set aside in .*trainguard.ckpt.quarantine' "the summary of the set-aside samples"
  [ "$(wc -l <"$WORK/trainguard-runs/trainguard-cpu-$JOB/trainguard.ckpt.quarantine")" = 2 ] ||
    job_failure "$JOB" "the quarantine file does not hold the 2 samples"
}

# (i) Planned stops are free: a job stopped on request (SIGUSR1, as the time limit's signal) five
# times in a row, with TG_MAX_FAILURES=1, is requeued five times and then completes.
case_planned_stops_free() {
  local n
  TG_MAX_FAILURES=1 submit trainguard-cpu.sbatch -- --dataset synthetic --synthetic-samples 600 --width 0.25 \
    --epochs 20 --batch-size 16 --log-every 1
  for n in 1 2 3 4 5; do
    wait_lines 120 'epoch [0-9]+/20 step [0-9]+/' "$((n == 1 ? 1 : $(grep -cE 'epoch [0-9]+/20 step [0-9]+/' "$(out)") + 1))"
    scancel -b -s USR1 "$JOB" || fail "scancel -b -s USR1 $JOB failed"
    wait_lines 60 '\] requeued' "$n"
    release_requeued
    wait_lines 60 "\\] run $((n + 1)) \\(restart $n of this job\\)" 1
  done
  wait_job_state "$JOB" 300 COMPLETED FAILED
  expect_job COMPLETED 0:0 5
  [ "$(grep -cE '\] srun exited 12 \(preempted.*\): requeue \(a planned stop \(free\)\)$' "$(out)")" = 5 ] ||
    job_failure "$JOB" "not 5 requeues after exit 12"
  say "5 stops on request, 5 requeues, then the end"
}

# (j) A GPU fault (exit 14, injected on the CPU) on this single node: the node is excluded, no
# node is left to restart in place, so the job is requeued with the node in its ExcNodeList
# (read back from Slurm): it waits for another node instead of landing on the same one.
case_gpu_fault_requeued_elsewhere() {
  local node
  node=$(hostname)
  submit trainguard-cpu.sbatch -- "${SMALL[@]}" --inject-fault gpu-fault:rank=1:step=3
  wait_output "$JOB" "$(out)" 90 '\] requeued without '
  expect_line "\\] node $node excluded from the rest of the job: GPU fault \\(exit=14 kind=gpu_fault step=3 host=$node\\)" \
    "the exclusion"
  local deadline=$((SECONDS + 30))
  until [ "$(job_field "$JOB" ExcNodeList)" = "$node" ] && [ "$(job_field "$JOB" JobState)" = PENDING ]; do
    ((SECONDS < deadline)) ||
      job_failure "$JOB" "the requeued job: state $(job_field "$JOB" JobState), ExcNodeList $(job_field "$JOB" ExcNodeList)"
    sleep 0.5
  done
  say "requeued job $JOB is PENDING with ExcNodeList=$node"
}

# (f) A job cancelled while it trains (scancel): the batch shell and the tasks get SIGTERM, the
# ranks checkpoint and exit 12, and the script does not requeue it: it stays CANCELLED.
case_cancel_not_requeued() {
  submit trainguard-cpu.sbatch -- --dataset synthetic --synthetic-samples 600 --width 0.25 --epochs 3 \
    --batch-size 16 --log-every 1
  wait_output "$JOB" "$(out)" 90 'epoch 1/3 step [0-9]+/'
  scancel "$JOB" || fail "scancel $JOB failed"
  wait_output "$JOB" "$(out)" 30 '\] not requeued: '
  wait_job_state "$JOB" 30 CANCELLED
  expect_line '^\[slurm job [0-9]+ .*\] srun exited 12 \(preempted.*\): ending \(' "exit 12 after SIGTERM"
  expect_line 'stopped on request after step [0-9]+: checkpoint ' "checkpoint on SIGTERM"
  [ "$(job_field "$JOB" Restarts)" = 0 ] || job_failure "$JOB" "job $JOB was requeued after scancel"
  [ -s "$WORK/trainguard-runs/trainguard-cpu-$JOB/trainguard.ckpt" ] || job_failure "$JOB" "no checkpoint"
}

# (m) TG_SRUN_ARGS reaches srun, split into words as a shell splits them: --label (srun prefixes
# every task's output line with its task number), a task prolog (srun runs it in each task's
# environment and writes its "print" lines to the task's output), and --export with a quoted
# value that holds a blank, which the prolog prints whole. Unbalanced quotes stop the job before
# any step, exit 2, naming the setting.
case_srun_extra_args() {
  local rank
  # shellcheck disable=SC2016 # expanded by the prolog
  printf '#!/bin/sh\necho "print probe: task $SLURM_PROCID TG_PROBE=$TG_PROBE"\n' >"$WORK/prolog.sh"
  chmod +x "$WORK/prolog.sh"
  TG_SRUN_ARGS="--label --task-prolog=$WORK/prolog.sh --export='ALL,TG_PROBE=two words'" \
    submit trainguard-cpu.sbatch -- "${SMALL[@]}"
  wait_job_state "$JOB" 90 COMPLETED FAILED
  expect_job COMPLETED 0:0 0
  for rank in 0 1; do
    expect_line "^$rank: probe: task $rank TG_PROBE=two words$" "task $rank's prolog line with the exported value"
    expect_line "^$rank: \[task\] rank $rank " "task $rank's line labelled by srun --label"
  done
  TG_SRUN_ARGS="--label 'unclosed" submit trainguard-cpu.sbatch -- "${SMALL[@]}"
  wait_job_state "$JOB" 60 COMPLETED FAILED
  expect_job FAILED 2:0 0
  expect_line "TG_SRUN_ARGS=--label 'unclosed: cannot be split into words \(unmatched single quote" \
    "refusal of unbalanced quotes"
}

# A flag after the script beats the job's default for it (the defaults travel as TRAINGUARD_*
# variables, below the command line), with no "given twice" refusal; a flag the job owns
# (--checkpoint) is refused before any step, exit 2, naming the setting to use instead.
case_user_flag_beats_job_default() {
  submit trainguard-cpu.sbatch -- "${SMALL[@]}" --run-config "$WORK/mine.toml" --label-report "$WORK/mine.json"
  wait_job_state "$JOB" 90 COMPLETED FAILED
  expect_job COMPLETED 0:0 0
  local run=$WORK/trainguard-runs/trainguard-cpu-$JOB
  [ -s "$WORK/mine.json" ] || job_failure "$JOB" "no label report at the --label-report given after the script"
  [ ! -e "$run/labels.json" ] || job_failure "$JOB" "the job's default label report was written too"
  grep -qE '^threads *= *1$' "$WORK/mine.toml" || job_failure "$JOB" "$WORK/mine.toml: not the job's threads default"
  grep -qE "^device *= *\"cpu\"$" "$WORK/mine.toml" || job_failure "$JOB" "$WORK/mine.toml: not the job's device"
  submit trainguard-cpu.sbatch -- "${SMALL[@]}" --checkpoint "$WORK/mine.ckpt"
  wait_job_state "$JOB" 60 COMPLETED FAILED
  expect_job FAILED 2:0 0
  expect_line "--checkpoint: the job's checkpoint is TG_CHECKPOINT .*: set TG_CHECKPOINT=FILE instead of passing" \
    "refusal of a flag the job owns"
}

# The restart policy alone (recovery/restart_policy.sh, through slurm/job.sh), without Slurm.
case_exit_code_mapping() {
  # shellcheck source-path=SCRIPTDIR source=../../slurm/job.sh
  source "$REPO/slurm/job.sh"
  local code want got state
  state=$(mktemp -d)
  decide() {
    RP_STATE_DIR=$state/$RANDOM$RANDOM RP_MAX_FAILURES=3 rp_decide "$@" "$state/no-fingerprint"
    echo "$RP_ACTION"
  }
  for code in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 134 137 143; do
    case "$code" in
      0) want=ok ;;
      1 | 2 | 3 | 4 | 7 | 8 | 9 | 10 | 13) want=fail ;;
      *) want=restart ;;
    esac
    got=$(decide "$code" 0 1)
    [ "$got" = "$want" ] || fail "exit $code, in place possible: '$got', expected '$want'"
    got=$(decide "$code" 0 0)
    [ "$got" = "${want/restart/requeue}" ] || fail "exit $code, in place impossible: '$got'"
    got=$(decide "$code" 1 1)
    [ "$got" = "${want/restart/ending}" ] || fail "exit $code after a SIGTERM to the batch shell: '$got'"
  done
  say "exit codes: ok, fail, restart, requeue and ending as documented"
  # Budgets: failures are counted over the job, planned stops are free, in-place restarts are
  # bounded per allocation.
  export RP_STATE_DIR=$state/budget RP_MAX_FAILURES=2 RP_MAX_IN_PLACE=3 RP_ALLOCATION=0
  got=""
  for code in 12 15 12 11 11 11; do
    rp_decide "$code" 0 1 "$state/no-fingerprint"
    got+="$RP_ACTION "
  done
  [ "$got" = "restart restart restart requeue requeue exhausted " ] || fail "budgets: '$got'"
  [ "$(rp_count failures)" = 2 ] || fail "failures counted: $(rp_count failures), expected 2"
  RP_ALLOCATION=1
  rp_decide 12 0 1 "$state/no-fingerprint"
  [ "$RP_ACTION" = restart ] || fail "a new allocation has no in-place restarts of its own"
  say "budgets: planned stops free, failures over the job, in-place restarts per allocation"
  unset RP_STATE_DIR RP_MAX_FAILURES RP_MAX_IN_PLACE RP_ALLOCATION
  rm -rf "$state"
  # A failure is remembered and recognised when it comes back.
  local dir
  dir=$(mktemp -d)
  RP_STATE_DIR=$dir/state
  rp_repeated "$dir/none" && fail "no fingerprint was taken for a repeated failure"
  echo "exit=11 kind=stall step=3" >"$dir/fp"
  rp_repeated "$dir/fp" && fail "a first failure was taken for a repeated one"
  rp_repeated "$dir/fp" || fail "the same failure twice was not recognised"
  echo "exit=11 kind=stall step=4" >"$dir/fp"
  rp_repeated "$dir/fp" && fail "a failure at another step was taken for a repeated one"
  rm -rf "$dir"
  say "repeated failures: recognised by their fingerprint"
  # The launcher bound reads the first rank that logged its exit; a bad TG_LAUNCHER_WAIT is refused.
  local logs
  logs=$(mktemp -d)
  [ -z "$(tg_first_exit "$logs")" ] || fail "tg_first_exit found an exit in an empty folder"
  printf '[12:00:00 rank 0] training\n' >"$logs/rank0.log"
  printf '[12:00:01 rank 1] error: x\n[12:00:02 rank 1] exiting with code 11\n' >"$logs/rank1.log"
  [ "$(tg_first_exit "$logs")" = "1 11" ] || fail "tg_first_exit: '$(tg_first_exit "$logs")', expected '1 11'"
  rm -rf "$logs"
  local ok=(TG_LAUNCHER=srun TG_BIN=/bin/true TG_LAUNCHER_WAIT=20 TG_MAX_FAILURES=3 TG_MAX_IN_PLACE=5
    TG_SPARE_NODES=0 TG_MIN_NODES=)
  (env "${ok[@]}" TG_LAUNCHER_WAIT=abc bash -c "source $REPO/slurm/job.sh; tg_check_settings" 2>/dev/null) &&
    fail "TG_LAUNCHER_WAIT=abc was accepted"
  (env "${ok[@]}" TG_SPARE_NODES=-1 bash -c "source $REPO/slurm/job.sh; tg_check_settings" 2>/dev/null) &&
    fail "TG_SPARE_NODES=-1 was accepted"
  (env "${ok[@]}" TG_MAX_RESTARTS=3 bash -c "source $REPO/slurm/job.sh; tg_check_settings" 2>/dev/null) &&
    fail "the retired TG_MAX_RESTARTS was accepted"
  (env "${ok[@]}" bash -c "source $REPO/slurm/job.sh; tg_check_settings") || fail "the default settings were refused"
  # The silent hosts: a majority of the ranks that named any, never this host.
  logs=$(mktemp -d)
  printf '[12:00:00 rank 0] rank 1 (host hb) silent for 5.1 s\n' >"$logs/rank0.log"
  printf '[12:00:00 rank 1] rank 0 (host ha) silent for 5.0 s\n' >"$logs/rank1.log"
  printf '[12:00:00 rank 2] rank 1 (host hb) silent for 5.2 s\n' >"$logs/rank2.log"
  [ "$(tg_silent_hosts "$logs")" = hb ] || fail "silent hosts by majority: '$(tg_silent_hosts "$logs")', expected hb"
  rm "$logs/rank2.log"
  printf '[12:00:00 rank 0] rank 1 (host %s) silent for 5.1 s\n' "$(hostname)" >"$logs/rank1.log"
  [ "$(tg_silent_hosts "$logs")" = hb ] || fail "two hosts naming each other: '$(tg_silent_hosts "$logs")', expected hb"
  rm -rf "$logs"
  say "launcher bound: first exit read; bad settings refused; silent hosts by majority"
}

if [ "$CASE" = exit_code_mapping ]; then
  case_exit_code_mapping
  exit 0
fi
declare -F "case_$CASE" >/dev/null || fail "unknown case $CASE"
if ! why=$(slurm_prerequisites); then
  echo "SKIP: $why"
  exit 77
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tg_slurm_XXXXXX")
trap 'slurm_stop; [ -n "${TG_KEEP_WORK:-}" ] || rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
slurm_start "$WORK/slurm"
"case_$CASE"
say "PASS: $CASE"
