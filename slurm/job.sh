# The body of trainguard's Slurm batch jobs, sourced by slurm/trainguard.sbatch (GPU) and, through
# it, slurm/trainguard-cpu.sbatch: launch the ranks (srun --mpi=pmix, or mpirun), forward a stop
# request to them, and map trainguard's exit code to "requeue the job" or "end it with that code".
# The settings (TG_*) are set by trainguard.sbatch before it sources this file. What to do after
# a step is the restart policy's (../recovery/restart_policy.sh, sourced here); how to do it
# (nodes, steps, requeues) is this file's.
# Functions only: sourcing it runs nothing.
# shellcheck shell=bash

# shellcheck source-path=SCRIPTDIR source=../recovery/restart_policy.sh
source "$(dirname "${BASH_SOURCE[0]}")/../recovery/restart_policy.sh"

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

# tg_trainguard_args [EXTRA...]: prints (one per line) the arguments of `trainguard train` that
# the job owns (the restart policy reads the checkpoint's failure fingerprint and the ranks' logs,
# and counts the restarts), then EXTRA (the arguments given to sbatch after the script). The
# job's overridable defaults travel as TRAINGUARD_* variables instead (tg_export_defaults), so a
# flag in EXTRA beats them; a flag the job owns, repeated in EXTRA, is refused (tg_check_args).
tg_trainguard_args() {
  printf '%s\n' train --resume auto --checkpoint "$TG_CHECKPOINT" --log-dir "$TG_LOG_DIR" \
    --restart-count "$TG_RESTART_COUNT" --restarts-in-place "$(rp_count in-place)"
  [ ! -s "$TG_STATE_DIR/excluded" ] || printf '%s\n' --excluded-nodes "$(tg_excluded_list)"
  (($# == 0)) || printf '%s\n' "$@"
}

# tg_export_defaults: exports the job's defaults of trainguard's settings as TRAINGUARD_*
# variables, which a flag after the script overrides (trainguard's precedence: command line, then
# environment, then --config file, then its own default). A TRAINGUARD_* variable already set in
# the job's environment is kept; empty TG_* settings set nothing.
tg_export_defaults() {
  local name setting variable
  for name in DEVICE BUNDLE_DIR LABEL_REPORT RUN_CONFIG CONFIG PUSHGATEWAY METRICS_TEXTFILE METRICS_PORT; do
    setting=TG_$name variable=TRAINGUARD_$name
    if [ -n "${!setting}" ] && [ -z "${!variable:-}" ]; then export "$variable=${!setting}"; fi
  done
  # Intra-op threads: the CPUs Slurm gave each task (0 is trainguard's own default).
  export TRAINGUARD_THREADS=${TRAINGUARD_THREADS:-${SLURM_CPUS_PER_TASK:-0}}
}

# tg_check_args [EXTRA...]: stops the job (exit 2) when EXTRA holds a flag that the job passes
# itself (tg_trainguard_args), naming the setting that changes it instead.
tg_check_args() {
  local arg flag
  for arg in "$@"; do
    flag=${arg%%=*}
    case "$flag" in
      --checkpoint) tg_log "$flag: the job's checkpoint is TG_CHECKPOINT (its failure fingerprint sits beside it):" \
        "set TG_CHECKPOINT=$([[ $arg == *=* ]] && echo "${arg#*=}" || echo FILE) instead of passing $flag" ;;
      --resume | --log-dir | --restart-count | --restarts-in-place | --excluded-nodes)
        tg_log "$flag is set by the job itself (slurm/job.sh: the restart policy reads or counts it):" \
          "drop it from the arguments after the script (docs/slurm.md, \"Settings and flags\")" ;;
      *) continue ;;
    esac
    exit 2
  done
}

# tg_words NAME: prints (one per line) the words of the setting NAME, split as a shell splits a
# command line but without expanding anything: blanks separate words, quotes ('...', "...") and
# backslashes keep blanks inside one. Fails (xargs' message on stderr) on unbalanced quotes.
tg_words() {
  printf '%s' "${!1}" | xargs -r printf '%s\n'
}

# tg_launcher_args: prints (one per line) the launcher's command line up to the task command:
# srun --mpi=pmix with one task per Slurm task and its CPUs bound, then TG_SRUN_ARGS, or mpirun
# (TG_LAUNCHER=mpirun) with TG_MPIRUN_ARGS.
tg_launcher_args() {
  local -a extra
  case "$TG_LAUNCHER" in
    srun)
      # No --kill-on-bad-exit: trainguard's ranks stop together with the code of the cause;
      # Slurm killing the others at the first non-zero exit would turn a label error (7) into
      # 137, a "killed" that would be requeued. Slurm 22.05's srun no longer reads
      # SLURM_CPUS_PER_TASK from the job: it is passed on explicitly.
      printf '%s\n' srun --mpi=pmix --cpu-bind=cores --kill-on-bad-exit=0
      [ -z "${SLURM_CPUS_PER_TASK:-}" ] || printf '%s\n' "--cpus-per-task=$SLURM_CPUS_PER_TASK"
      tg_words TG_SRUN_ARGS
      ;;
    mpirun)
      mapfile -t extra < <(tg_words TG_MPIRUN_ARGS)
      # -x: the thread settings and the job's TRAINGUARD_* defaults reach the ranks on every node.
      printf '%s\n' mpirun -np "$SLURM_NTASKS" -x OMP_NUM_THREADS
      compgen -e | grep '^TRAINGUARD_' | sed 's/^/-x\n/' || true
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

# tg_all_accounted LOG_DIR RANKS: whether each of ranks 0..RANKS-1 has either logged its exit in
# LOG_DIR or sits on a host the others named silent (tg_silent_hosts): nothing more will come.
tg_all_accounted() {
  local r silent
  silent=" $(tg_silent_ranks "$1" | tr '\n' ' ') "
  for ((r = 0; r < $2; r++)); do
    grep -q ' exiting with code ' "$1/rank$r.log" 2>/dev/null || [[ $silent == *" $r "* ]] || return 1
  done
}

# tg_bound_launcher PID: run in the background beside the launcher PID. Once a rank has logged its
# exit in TG_LOG_DIR, the launcher gets TG_LAUNCHER_WAIT seconds to return, or 2 s once every rank
# of the step (TG_STEP_RANKS) is accounted for (tg_all_accounted: a launcher then waits only for
# the daemon of a node it cannot reach); past that it is ended (SIGTERM twice: mpirun's and
# srun's "terminate now", then SIGKILL 5 s later) and the exiting rank's code is written to
# TG_LOG_DIR/launcher-ended, for tg_run_step to return.
tg_bound_launcher() {
  local pid=$1 first="" deadline
  while kill -0 "$pid" 2>/dev/null && [ -z "$first" ]; do
    sleep 1
    first=$(tg_first_exit "$TG_LOG_DIR")
  done
  [ -n "$first" ] || return 0
  deadline=$((SECONDS + TG_LAUNCHER_WAIT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    if tg_all_accounted "$TG_LOG_DIR" "${TG_STEP_RANKS:-0}"; then
      deadline=$((SECONDS + 2 < deadline ? SECONDS + 2 : deadline))
    fi
    sleep 0.5
  done
  kill -0 "$pid" 2>/dev/null || return 0
  tg_log "rank ${first% *} exited with code ${first#* } and $TG_LAUNCHER has not returned (a node it cannot" \
    "reach?): ending it (TG_LAUNCHER_WAIT)"
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

# tg_requeue EXCLUDED: asks Slurm to requeue this job without the nodes EXCLUDED (comma-separated,
# may be empty): it reruns the same script, with SLURM_RESTART_COUNT one higher, after Slurm's
# requeue hold. A running job's ExcNodeList cannot be changed (Slurm refuses the update), so the
# job is requeued held, updated while it leaves the running state (the batch shell survives the
# requeue's SIGTERM through its trap), then released. Returns 0, or scontrol's failing status.
tg_requeue() {
  local out rc=0 deadline
  out=$(scontrol requeuehold "$SLURM_JOB_ID" 2>&1) || rc=$?
  if ((rc != 0)); then
    tg_log "scontrol requeuehold $SLURM_JOB_ID failed ($rc): $out"
    return "$rc"
  fi
  if [ -n "$1" ]; then
    deadline=$((SECONDS + 10))
    until out=$(scontrol update JobId="$SLURM_JOB_ID" ExcNodeList="$1" 2>&1); do
      if ((SECONDS >= deadline)); then
        tg_log "the requeued job could not exclude $1 (scontrol update: $out); it may land on them again"
        break
      fi
      sleep 0.2
    done
  fi
  # The requeue's SIGTERM reaches every process of the batch step, a scontrol running then too:
  # the release is tried again until it goes through (before KillWait's SIGKILL).
  deadline=$((SECONDS + 10))
  until out=$(scontrol release "$SLURM_JOB_ID" 2>&1); do
    rc=$?
    if ((SECONDS >= deadline)); then
      tg_log "scontrol release $SLURM_JOB_ID failed ($rc): $out; release it by hand (scontrol release $SLURM_JOB_ID)"
      return "$rc"
    fi
    sleep 0.2
  done
  return 0
}

# tg_check_settings: fails (exit 2, with what to change) on a launcher other than srun or
# mpirun, a trainguard binary that is not executable, a count setting that is not a whole
# number, launcher arguments with unbalanced quotes, or the retired TG_MAX_RESTARTS.
tg_check_settings() {
  case "$TG_LAUNCHER" in
    srun | mpirun) ;;
    *) tg_log "TG_LAUNCHER=$TG_LAUNCHER: use srun or mpirun"; exit 2 ;;
  esac
  [ -x "$TG_BIN" ] || { tg_log "TG_BIN=$TG_BIN is not an executable: build trainguard, or set TG_BIN"; exit 2; }
  local name why
  for name in TG_SRUN_ARGS TG_MPIRUN_ARGS; do
    why=$(tg_words "$name" 2>&1 >/dev/null) || {
      tg_log "$name=${!name}: cannot be split into words (${why#xargs: }): close each quote, or escape" \
        "it with a backslash (docs/slurm.md, \"Extra launcher arguments\")"
      exit 2
    }
  done
  for name in TG_LAUNCHER_WAIT TG_MAX_FAILURES TG_MAX_IN_PLACE TG_SPARE_NODES TG_MIN_NODES; do
    [[ ${!name} =~ ^[0-9]*$ ]] || { tg_log "$name=${!name}: give a whole number (see slurm/trainguard.sbatch)"; exit 2; }
  done
  [ -z "${TG_MAX_RESTARTS:-}" ] || {
    tg_log "TG_MAX_RESTARTS is replaced by TG_MAX_FAILURES (planned stops no longer count against it)" \
      "and TG_MAX_IN_PLACE: set those instead"
    exit 2
  }
}

# tg_silent_ranks LOG_DIR: prints "RANK HOST", one per line, for the ranks that the run's ranks
# named silent ("rank R (host H) silent for" in LOG_DIR/rank*.log): those named by more than half
# of the ranks that named any, or with no such majority (two hosts cut apart name each other)
# every named rank; never one on this batch host, which is alive and reaches Slurm.
tg_silent_ranks() {
  local log voters=0 named pair
  declare -A votes=()
  for log in "$1"/rank*.log; do
    [ -f "$log" ] || continue
    named=$(sed -n 's/.*rank \([0-9]*\) (host \([^)]*\)) silent for .*/\1:\2/p' "$log" | sort -u)
    [ -n "$named" ] || continue
    voters=$((voters + 1))
    for pair in $named; do votes[$pair]=$((${votes[$pair]:-0} + 1)); done
  done
  local majority=() all=()
  for pair in "${!votes[@]}"; do
    [ "${pair#*:}" != "$(hostname)" ] || continue
    all+=("${pair/:/ }")
    ((2 * votes[$pair] > voters)) && majority+=("${pair/:/ }")
  done
  if ((${#majority[@]})); then printf '%s\n' "${majority[@]}"; elif ((${#all[@]})); then printf '%s\n' "${all[@]}"; fi
}

# tg_silent_hosts LOG_DIR: the hosts of tg_silent_ranks, one per line.
tg_silent_hosts() { tg_silent_ranks "$1" | awk '{print $2}' | sort -u; }

# tg_unhealthy_nodes NODES...: prints "NODE STATE" for each of NODES that Slurm holds down,
# drained, draining, failing or not responding.
tg_unhealthy_nodes() {
  (($#)) || return 0
  sinfo -h -N -n "$(IFS=,; echo "$*")" -o '%N %t' 2>/dev/null | sort -u |
    awk '$2 ~ /(down|drain|drng|fail|maint|\*)/'
}

# tg_exclude NODE REASON: adds NODE to the job's excluded nodes (TG_STATE_DIR/excluded: "NODE
# REASON" lines, kept for the rest of the job, requeues included) unless it is there already.
tg_exclude() {
  grep -q "^$1 " "$TG_STATE_DIR/excluded" 2>/dev/null && return 0
  printf '%s %s\n' "$1" "$2" >>"$TG_STATE_DIR/excluded"
  tg_log "node $1 excluded from the rest of the job: $2"
}

# tg_exclude_failed_nodes FINGERPRINT LOG_DIR NODES...: excludes the nodes a run's failure names:
# a GPU fault's host (host= in FINGERPRINT), the hosts the ranks named silent (tg_silent_hosts),
# and those of NODES that Slurm holds unhealthy.
tg_exclude_failed_nodes() {
  local fingerprint=$1 logs=$2 host state
  shift 2
  host=$(sed -n 's/.* host=\([^ ]*\).*/\1/p' "$fingerprint" 2>/dev/null) || host="" # no fingerprint: none
  [ -z "$host" ] || tg_exclude "$host" "GPU fault ($(cat "$fingerprint"))"
  while read -r host; do
    [ -z "$host" ] || tg_exclude "$host" "its ranks went silent (the other ranks' verdict in $logs)"
  done < <(tg_silent_hosts "$logs")
  while read -r host state; do
    [ -z "$host" ] || tg_exclude "$host" "Slurm holds it $state"
  done < <(tg_unhealthy_nodes "$@")
}

# tg_excluded_list: prints the job's excluded nodes, comma-separated (nothing when there are none).
tg_excluded_list() {
  [ ! -s "$TG_STATE_DIR/excluded" ] || cut -d' ' -f1 "$TG_STATE_DIR/excluded" | paste -sd,
}

# tg_pick_nodes NODES...: prints the nodes the next step runs on, one per line: the first
# TG_ACTIVE_NODES of NODES not excluded (the others are spares), or all of them when fewer are
# left but at least TG_MIN_NODES; nothing when fewer than TG_MIN_NODES are left.
tg_pick_nodes() {
  local node usable=()
  for node in "$@"; do
    grep -q "^$node " "$TG_STATE_DIR/excluded" 2>/dev/null || usable+=("$node")
  done
  ((${#usable[@]} >= TG_MIN_NODES)) || return 0
  printf '%s\n' "${usable[@]:0:TG_ACTIVE_NODES}"
}

# tg_step_args NODES...: prints the launcher's placement arguments for a step on NODES with
# TG_TASKS_PER_NODE tasks each. srun's --overlap: a step that lost a node ends only once that
# node answers or Slurm declares it down (SlurmdTimeout, 300 s by default), and until then holds
# its CPUs on the survivors ("step creation temporarily disabled ... Requested nodes are busy");
# the restarted step shares them, as its processes are gone.
tg_step_args() {
  local list
  list=$(IFS=,; echo "$*")
  case "$TG_LAUNCHER" in
    srun) printf '%s\n' --overlap --nodes="$#" --ntasks=$(($# * TG_TASKS_PER_NODE)) --nodelist="$list" ;;
    mpirun) printf '%s\n' -np $(($# * TG_TASKS_PER_NODE)) --host "$(printf "%s:$TG_TASKS_PER_NODE," "$@" | sed 's/,$//')" ;;
  esac
}

# tg_first_step_after SINCE LOG: run in the background once a restarted run has started: waits
# for its rank 0 to log its first step (or its end) and logs the time from SINCE (epoch seconds:
# the end of the failed run) to it, and where the run continued (rank 0's resume line).
tg_first_step_after() {
  local since=$1 log=$2 deadline=$((SECONDS + 3600)) from
  while ((SECONDS < deadline)); do
    if grep -qE ' step [0-9]+/[0-9]+ | exiting with code ' "$log" 2>/dev/null; then
      grep -qE ' step [0-9]+/[0-9]+ ' "$log" || return 0
      from=$(sed -n 's/.*resuming from checkpoint .*: \(epoch [0-9]*\), \(step [0-9]*\) of the epoch, \(global step [0-9]*\),.*/\3 (\1, \2 of the epoch)/p' \
        "$log" | head -n 1) || from=""
      tg_log "$(basename "$(dirname "$log")") trains again: its first step came $(($(date +%s) - since)) s after the" \
        "failed run ended; it continued from ${from:-the start (no checkpoint yet)}"
      return 0
    fi
    sleep 0.5
  done
}

# tg_job_main [TRAINGUARD ARGS...]: the whole batch job: `trainguard train` steps on the
# allocation's healthy nodes, one after the other as the restart policy (recovery/
# restart_policy.sh) says: in place (a new step, without the failed nodes, a spare taking their
# place) or through a requeue. Exits with trainguard's code, or 0 once the job is requeued.
tg_job_main() {
  tg_check_settings
  mkdir -p "$TG_RUN_DIR" "$TG_STATE_DIR"
  # The textfile folder is node_exporter's, usually on each node's own disk: made here for the
  # batch node only.
  [ -z "$TG_METRICS_TEXTFILE" ] || mkdir -p "$TG_METRICS_TEXTFILE"
  tg_check_args "$@"
  tg_export_defaults
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
  local -a nodes launcher
  mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
  TG_TASKS_PER_NODE=${SLURM_NTASKS_PER_NODE:-$((SLURM_NTASKS / ${#nodes[@]}))}
  TG_ACTIVE_NODES=$((${#nodes[@]} - TG_SPARE_NODES))
  ((TG_ACTIVE_NODES > 0)) || { tg_log "TG_SPARE_NODES=$TG_SPARE_NODES leaves none of the ${#nodes[@]} node(s) to train on"; exit 2; }
  TG_MIN_NODES=${TG_MIN_NODES:-$TG_ACTIVE_NODES}
  mapfile -t launcher < <(tg_launcher_args)
  # shellcheck disable=SC2034 # the restart policy's settings
  RP_STATE_DIR=$TG_STATE_DIR RP_MAX_FAILURES=$TG_MAX_FAILURES RP_MAX_IN_PLACE=$TG_MAX_IN_PLACE
  # shellcheck disable=SC2034
  RP_ALLOCATION=${SLURM_RESTART_COUNT:-0}
  TG_TERMINATED=0
  local rc=1 run fingerprint=$TG_CHECKPOINT.failure active=() previous=() fault_at
  mapfile -t active < <(tg_pick_nodes "${nodes[@]}")
  while :; do
    if ((${#active[@]} == 0)); then # a requeued job whose allocation holds too few usable nodes
      tg_log "fewer than TG_MIN_NODES=$TG_MIN_NODES of the allocation's nodes are usable (excluded:" \
        "$(tg_excluded_list)): requeued"
      tg_requeue_or_fail "$rc"
    fi
    rp_bump runs
    run=$(rp_count runs)
    TG_RESTART_COUNT=$((run - 1))
    # Each rank's log lines of this run (--log-dir), one folder per run of the job.
    TG_LOG_DIR=$TG_RUN_DIR/logs/run$run
    mkdir -p "$TG_LOG_DIR"
    local -a trainguard placement
    mapfile -t trainguard < <(tg_trainguard_args "$@")
    mapfile -t placement < <(tg_step_args "${active[@]}")
    TG_STEP_RANKS=$((${#active[@]} * TG_TASKS_PER_NODE))
    tg_log "run $run (restart $((run - 1)) of this job): $TG_STEP_RANKS task(s) on" \
      "$(IFS=,; echo "${active[*]}"), output in $TG_RUN_DIR"
    tg_log "${launcher[*]} ${placement[*]} $TG_SLURM_DIR/task.sh $TG_BIN ${trainguard[*]}"
    [ -z "${fault_at:-}" ] || tg_first_step_after "$fault_at" "$TG_LOG_DIR/rank0.log" &
    rm -f "$fingerprint" # a failure of this run writes its own
    rc=0
    tg_run_step "${launcher[@]}" "${placement[@]}" "$TG_SLURM_DIR/task.sh" "$TG_BIN" "${trainguard[@]}" || rc=$?
    fault_at=$(date +%s)
    ((rc == 0)) || tg_exclude_failed_nodes "$fingerprint" "$TG_LOG_DIR" "${active[@]}"
    previous=("${active[@]}")
    mapfile -t active < <(tg_pick_nodes "${nodes[@]}")
    # In place when the step can go on here: not a stop that asked to leave the allocation
    # (12: the time limit, a preemption), and enough nodes left.
    rp_decide "$rc" "$TG_TERMINATED" "$(((rc != 12) && ${#active[@]} > 0))" "$fingerprint"
    tg_log "$TG_LAUNCHER exited $rc ($(tg_code_name "$rc")): $RP_ACTION${RP_REASON:+ ($RP_REASON)}"
    case "$RP_ACTION" in
      ok) exit 0 ;;
      restart) tg_log_restart "$rc" "${previous[*]}" "${active[*]}" ;;
      requeue) tg_requeue_or_fail "$rc" ;;
      ending) tg_log "not requeued: Slurm is ending the job (SIGTERM); a rerun continues from $TG_CHECKPOINT"; exit "$rc" ;;
      *) tg_log "not continued: $RP_REASON"; exit "$rc" ;;
    esac
  done
}

# tg_log_restart CODE PREVIOUS_NODES NEXT_NODES: the restart line: what failed, which nodes left
# and which came in, the next world size, and the training lost (rank 0's own count).
tg_log_restart() {
  local left=() came=() node lost
  for node in $2; do [[ " $3 " == *" $node "* ]] || left+=("$node"); done
  for node in $3; do [[ " $2 " == *" $node "* ]] || came+=("$node"); done
  lost=$(sed -n 's/.*\] \([0-9]* s\) of training since the last checkpoint.*/\1/p' "$TG_LOG_DIR/rank0.log" 2>/dev/null |
    tail -n 1) || lost=""
  tg_log "restart in place after exit $1 ($(tg_code_name "$1")):" \
    "${left[*]:+without ${left[*]}}${came[*]:+, ${came[*]} taking over}${left[*]:+; }$(($(wc -w <<<"$3") * TG_TASKS_PER_NODE)) rank(s)" \
    "on $(tr ' ' , <<<"$3"); ${lost:-no} training lost; continuing from $TG_CHECKPOINT (--resume auto)"
}

# tg_requeue_or_fail CODE: requeues the job without its excluded nodes and exits 0, or exits CODE
# when Slurm refuses.
tg_requeue_or_fail() {
  local excluded
  excluded=$(tg_excluded_list)
  if tg_requeue "$excluded"; then
    tg_log "requeued${excluded:+ without $excluded}: the next run continues from $TG_CHECKPOINT (--resume auto)"
    exit 0
  fi
  exit "$1"
}
