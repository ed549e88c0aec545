# The body of trainguard's Slurm batch jobs, sourced by slurm/trainguard.sbatch (GPU) and, through
# it, slurm/trainguard-cpu.sbatch: launch the ranks (srun --mpi=pmix, or mpirun), forward a stop
# request to them, and map trainguard's exit code to "requeue the job" or "end it with that code".
# The settings (TG_*) are set by trainguard.sbatch before it sources this file.
# Functions only: sourcing it runs nothing.
# shellcheck shell=bash

# tg_log MESSAGE...: one line in the job's output file, prefixed with the job id and the time.
tg_log() { printf '[slurm job %s %(%H:%M:%S)T] %s\n' "${SLURM_JOB_ID:-?}" -1 "$*" >&2; }

# tg_code_name CODE: prints what a trainguard (or srun) exit code means, in a few words.
tg_code_name() {
  case "$1" in
    0) echo "success" ;;
    1) echo "internal error" ;;
    2) echo "usage: a bad flag, config entry or TRAINGUARD_* variable" ;;
    3) echo "dataset missing or unreadable" ;;
    4) echo "checkpoint unwritable, missing or incompatible" ;;
    5) echo "MPI/NCCL communication failure" ;;
    6) echo "a peer rank failed or vanished" ;;
    7) echo "label validation failed" ;;
    8) echo "a step failed on its data" ;;
    9) echo "CUDA device-side assert" ;;
    10) echo "non-finite loss, gradient or input" ;;
    11) echo "stall: a rank did not arrive within --step-timeout" ;;
    12) echo "preempted: checkpoint written, to be continued" ;;
    13) echo "out of memory: lower --batch-size" ;;
    14) echo "GPU fault: the GPU or its node failed" ;;
    15) echo "bad samples set aside (--bad-samples quarantine): to be continued" ;;
    *)
      if (($1 > 128 && $1 < 160)); then echo "a task was killed by signal $(($1 - 128))"; else echo "unknown code"; fi
      ;;
  esac
}

# tg_exit_action CODE RESTARTS MAX_RESTARTS TERMINATED: prints what to do after the launcher
# returned CODE (srun returns the highest code of its tasks, mpirun that of the first rank to
# fail; either gives 128+N for a task killed by signal N); TERMINATED is 1 when the batch shell
# got SIGTERM, i.e. Slurm itself is ending the job (scancel, the time limit, a preemption, an
# administrator's requeue), else 0:
#   ok         CODE 0;
#   requeue    12 (checkpointed on request), what a lost node or peer leaves behind (5, 6, 11,
#              a task killed by a signal) or a GPU fault (14, rerun without that node), while
#              RESTARTS < MAX_RESTARTS and not TERMINATED; and 15 (bad samples set aside, the
#              run goes on without them) whatever RESTARTS: trainguard's --max-quarantined
#              bounds those requeues, and a set-aside sample is never met again;
#   ending     the same codes when TERMINATED: Slurm decides (a cancelled job stays cancelled);
#   exhausted  the same codes with no restart left;
#   fail       anything else: a usage, data, label, checkpoint or memory error (2, 3, 4, 7, 8,
#              9, 10, 13) would fail again, and 1 is a bug.
tg_exit_action() {
  local code=$1 restarts=$2 max=$3 terminated=$4
  case "$code" in
    0) echo ok; return ;;
    15) if ((terminated)); then echo ending; else echo requeue; fi; return ;;
    5 | 6 | 11 | 12 | 14) ;;
    *) if ! ((code > 128 && code < 160)); then echo fail; return; fi ;;
  esac
  if ((terminated)); then
    echo ending
  elif ((restarts < max)); then
    echo requeue
  else
    echo exhausted
  fi
}

# tg_trainguard_args [EXTRA...]: prints (one per line) the arguments of `trainguard train` made of
# the settings, then EXTRA (the arguments given to sbatch after the script).
tg_trainguard_args() {
  printf '%s\n' train --resume auto --device "$TG_DEVICE" --checkpoint "$TG_CHECKPOINT" \
    --bundle-dir "$TG_BUNDLE_DIR" --label-report "$TG_LABEL_REPORT" --run-config "$TG_RUN_CONFIG" \
    --log-dir "$TG_LOG_DIR" --restart-count "${SLURM_RESTART_COUNT:-0}"
  [ -z "$TG_CONFIG" ] || printf '%s\n' --config "$TG_CONFIG"
  [ -z "$TG_PUSHGATEWAY" ] || printf '%s\n' --pushgateway "$TG_PUSHGATEWAY"
  [ -z "$TG_METRICS_TEXTFILE" ] || printf '%s\n' --metrics-textfile "$TG_METRICS_TEXTFILE"
  [ -z "$TG_METRICS_PORT" ] || printf '%s\n' --metrics-port "$TG_METRICS_PORT"
  (($# == 0)) || printf '%s\n' "$@"
}

# tg_launcher_args: prints (one per line) the launcher's command line up to the task command:
# srun --mpi=pmix with one task per Slurm task and its CPUs bound, or mpirun (TG_LAUNCHER=mpirun)
# with TG_MPIRUN_ARGS.
tg_launcher_args() {
  local extra
  case "$TG_LAUNCHER" in
    srun)
      # No --kill-on-bad-exit: trainguard's ranks stop together with the code of the cause;
      # Slurm killing the others at the first non-zero exit would turn a label error (7) into
      # 137, a "killed" that would be requeued. Slurm 22.05's srun no longer reads
      # SLURM_CPUS_PER_TASK from the job: it is passed on explicitly.
      printf '%s\n' srun --mpi=pmix --cpu-bind=cores --kill-on-bad-exit=0
      [ -z "${SLURM_CPUS_PER_TASK:-}" ] || printf '%s\n' "--cpus-per-task=$SLURM_CPUS_PER_TASK"
      ;;
    mpirun)
      read -r -a extra <<<"$TG_MPIRUN_ARGS"
      # -x: the thread settings reach the ranks on every node.
      printf '%s\n' mpirun -np "$SLURM_NTASKS" -x TRAINGUARD_THREADS -x OMP_NUM_THREADS
      ((${#extra[@]} == 0)) || printf '%s\n' "${extra[@]}"
      ;;
  esac
}

# tg_forward_stop SIGNAL: the batch shell's trap. Asks the ranks for a checkpoint and a stop
# (exit 12) by sending SIGUSR1 to the launcher, which hands it to every task (srun and mpirun
# both do); a SIGTERM to the batch shell (scancel, the time limit, a preemption) is turned into
# the same request, and remembered in TG_TERMINATED. Never fails: the launcher may be gone.
tg_forward_stop() {
  TG_SIGNALLED=1
  [ "$1" != TERM ] || TG_TERMINATED=1
  if [ -n "${TG_LAUNCHER_PID:-}" ] && kill -0 "$TG_LAUNCHER_PID" 2>/dev/null; then
    tg_log "batch shell got SIG$1: asking the ranks to checkpoint and stop" \
      "(SIGUSR1 to $TG_LAUNCHER pid $TG_LAUNCHER_PID)"
    kill -USR1 "$TG_LAUNCHER_PID" 2>/dev/null || true
  else
    tg_log "batch shell got SIG$1 (no step running)"
  fi
}

# tg_first_exit LOG_DIR: prints "RANK CODE" of the first rank that logged its exit in
# LOG_DIR/rank*.log ("exiting with code N": a rank that stops), or nothing yet.
tg_first_exit() {
  local log code
  for log in "$1"/rank*.log; do
    [ -f "$log" ] || continue
    code=$(sed -n 's/.* exiting with code \([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
    [ -z "$code" ] || { log=${log##*/rank}; printf '%s %s\n' "${log%.log}" "$code"; return 0; }
  done
}

# tg_bound_launcher PID: run in the background beside the launcher PID. Once a rank has logged its
# exit in TG_LOG_DIR, the launcher gets TG_LAUNCHER_WAIT seconds to return; past them it is ended
# (SIGTERM twice: mpirun's and srun's "terminate now", then SIGKILL 5 s later) and the exiting
# rank's code is written to TG_LOG_DIR/launcher-ended, for tg_run_step to return.
tg_bound_launcher() {
  local pid=$1 first="" deadline
  while kill -0 "$pid" 2>/dev/null && [ -z "$first" ]; do
    sleep 1
    first=$(tg_first_exit "$TG_LOG_DIR")
  done
  [ -n "$first" ] || return 0
  deadline=$((SECONDS + TG_LAUNCHER_WAIT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 1; done
  kill -0 "$pid" 2>/dev/null || return 0
  tg_log "rank ${first% *} exited with code ${first#* } over ${TG_LAUNCHER_WAIT} s ago and $TG_LAUNCHER has not" \
    "returned (a node it cannot reach?): ending it (TG_LAUNCHER_WAIT)"
  echo "${first#* }" >"$TG_LOG_DIR/launcher-ended"
  kill -TERM "$pid" 2>/dev/null
  sleep 0.5
  kill -TERM "$pid" 2>/dev/null
  sleep 5
  kill -KILL "$pid" 2>/dev/null || true
}

# tg_run_step COMMAND...: runs COMMAND in the background with the stop traps set and its life
# bounded once a rank has exited (tg_bound_launcher), waits for it through any number of trapped
# signals, and returns its exit status, or the exiting rank's code when it had to be ended.
tg_run_step() {
  trap 'tg_forward_stop USR1' USR1
  trap 'tg_forward_stop TERM' TERM
  "$@" &
  TG_LAUNCHER_PID=$!
  tg_bound_launcher "$TG_LAUNCHER_PID" &
  local bound=$! rc
  while :; do
    TG_SIGNALLED=0
    rc=0
    wait "$TG_LAUNCHER_PID" || rc=$?
    # A trapped signal ends `wait` early with 128+N; waiting again returns the real status
    # (bash keeps it even when the launcher has already exited).
    ((TG_SIGNALLED)) || break
  done
  kill "$bound" 2>/dev/null || true
  wait "$bound" 2>/dev/null || true
  [ ! -f "$TG_LOG_DIR/launcher-ended" ] || rc=$(cat "$TG_LOG_DIR/launcher-ended")
  TG_LAUNCHER_PID=""
  return "$rc"
}

# tg_requeue: asks Slurm to requeue this job (it reruns the same script, with
# SLURM_RESTART_COUNT one higher, after Slurm's requeue hold). Returns scontrol's status.
tg_requeue() {
  local out rc=0
  out=$(scontrol requeue "$SLURM_JOB_ID" 2>&1) || rc=$?
  ((rc == 0)) || tg_log "scontrol requeue $SLURM_JOB_ID failed ($rc): $out"
  return "$rc"
}

# tg_check_settings: fails (exit 2, with what to change) on a launcher other than srun or
# mpirun, a trainguard binary that is not executable, or a TG_LAUNCHER_WAIT that is not a count
# of seconds.
tg_check_settings() {
  case "$TG_LAUNCHER" in
    srun | mpirun) ;;
    *) tg_log "TG_LAUNCHER=$TG_LAUNCHER: use srun or mpirun"; exit 2 ;;
  esac
  [ -x "$TG_BIN" ] || { tg_log "TG_BIN=$TG_BIN is not an executable: build trainguard, or set TG_BIN"; exit 2; }
  [[ $TG_LAUNCHER_WAIT =~ ^[0-9]+$ ]] ||
    { tg_log "TG_LAUNCHER_WAIT=$TG_LAUNCHER_WAIT: give whole seconds (default 20)"; exit 2; }
}

# tg_same_failure FINGERPRINT MEMORY: whether this run's failure (FINGERPRINT, the line trainguard
# writes beside the checkpoint: exit code, kind, step, and the host of a GPU fault) is the one the
# job was last requeued for (MEMORY); if not, it is remembered there for the next run. A requeue
# from the same checkpoint that meets the same failure would loop until TG_MAX_RESTARTS.
tg_same_failure() {
  local now
  now=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$now" ] || return 1
  [ "$now" = "$(cat "$2" 2>/dev/null)" ] && return 0
  printf '%s\n' "$now" >"$2"
  return 1
}

# tg_exclude_failed_node FINGERPRINT: a GPU fault's node (host= in FINGERPRINT) is added to the
# job's excluded nodes, so that the requeued run starts elsewhere. Node names are host names.
tg_exclude_failed_node() {
  local host current
  host=$(sed -n 's/.* host=\([^ ]*\).*/\1/p' "$1" 2>/dev/null)
  [ -n "$host" ] || return 0
  current=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/.*ExcNodeList=\([^ ]*\).*/\1/p')
  [ "$current" != "(null)" ] || current=
  if scontrol update JobId="$SLURM_JOB_ID" ExcNodeList="${current:+$current,}$host"; then
    tg_log "GPU fault on $host: the requeued job will not run there (ExcNodeList ${current:+$current,}$host)"
  else
    tg_log "GPU fault on $host: could not exclude it from the job (scontrol update failed)"
  fi
}

# tg_job_main [TRAINGUARD ARGS...]: the whole batch job: one `trainguard train` step over every
# task of the allocation, then the exit-code mapping (tg_exit_action). Exits with trainguard's
# code, or 0 once the job is requeued.
tg_job_main() {
  local restarts=${SLURM_RESTART_COUNT:-0}
  tg_check_settings
  mkdir -p "$TG_RUN_DIR"
  # Each rank's log lines of this run (--log-dir), one folder per run of the job.
  TG_LOG_DIR=$TG_RUN_DIR/logs/run$((restarts + 1))
  mkdir -p "$TG_LOG_DIR"
  # The textfile folder is node_exporter's, usually on each node's own disk: made here for the
  # batch node only.
  [ -z "$TG_METRICS_TEXTFILE" ] || mkdir -p "$TG_METRICS_TEXTFILE"
  # Intra-op threads: the CPUs Slurm gave each task, as an environment default (a --threads on
  # the command line or in the config file wins; 0 is trainguard's own default).
  export TRAINGUARD_THREADS=${TRAINGUARD_THREADS:-${SLURM_CPUS_PER_TASK:-0}}
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
  local -a launcher trainguard
  mapfile -t launcher < <(tg_launcher_args)
  mapfile -t trainguard < <(tg_trainguard_args "$@")
  tg_log "run $((restarts + 1)) (restart $restarts of at most $TG_MAX_RESTARTS): $SLURM_NTASKS task(s) on" \
    "${SLURM_JOB_NODELIST:-?}, output in $TG_RUN_DIR"
  tg_log "${launcher[*]} $TG_SLURM_DIR/task.sh $TG_BIN ${trainguard[*]}"

  local rc=0 action fingerprint=$TG_CHECKPOINT.failure
  rm -f "$fingerprint"  # a failure of this run writes its own
  TG_TERMINATED=0
  tg_run_step "${launcher[@]}" "$TG_SLURM_DIR/task.sh" "$TG_BIN" "${trainguard[@]}" || rc=$?
  action=$(tg_exit_action "$rc" "$restarts" "$TG_MAX_RESTARTS" "$TG_TERMINATED")
  if [ "$action" = requeue ] && ((rc != 15)) && tg_same_failure "$fingerprint" "$TG_RUN_DIR/requeued-failure"; then
    action=repeated
  fi
  tg_log "$TG_LAUNCHER exited $rc ($(tg_code_name "$rc")): $action"
  case "$action" in
    ok) exit 0 ;;
    requeue)
      ((rc != 14)) || tg_exclude_failed_node "$fingerprint"
      if tg_requeue; then
        tg_log "requeued: the next run continues from $TG_CHECKPOINT (--resume auto)"
        exit 0
      fi
      ;;
    exhausted) tg_log "not requeued: $restarts restart(s) already, TG_MAX_RESTARTS=$TG_MAX_RESTARTS" ;;
    repeated) tg_log "not requeued: the run met the failure it was requeued for again ($(cat "$fingerprint"))" ;;
    ending) tg_log "not requeued: Slurm is ending the job (SIGTERM); a rerun continues from $TG_CHECKPOINT" ;;
  esac
  exit "$rc"
}
