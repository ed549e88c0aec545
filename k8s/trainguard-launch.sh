#!/usr/bin/env bash
# The MPIJob launcher's entrypoint (k8s/mpijob.yaml, installed as /usr/local/bin/trainguard-launch
# by k8s/Dockerfile): runs its arguments, `mpirun ... trainguard train ...`, again and again in
# this container as trainguard's restart policy says (recovery/restart_policy.sh, installed as
# /usr/local/lib/trainguard/restart_policy.sh), and turns the pod's signals and trainguard's exit
# codes into what Kubernetes should do.
#
#   trainguard-launch mpirun [mpirun flags] trainguard train [trainguard flags]
#
# SIGTERM (pod deletion, node drain, preemption, `kubectl delete mpijob`) becomes SIGUSR1 for
# mpirun. OpenMPI 4.1's mpirun forwards SIGUSR1 to every rank at once, but SIGTERM only after
# odls_base_sigkill_timeout (1 s) and SIGKILL one timeout later, and a rank reads SIGTERM under
# mpirun as a teardown (exit 6). On SIGUSR1 the ranks agree on a step, rank 0 writes the
# checkpoint and every rank exits 12 (preempted); this script waits for mpirun and exits with its
# code, without running it again: the pod is going away. terminationGracePeriodSeconds must leave
# time for that.
#
# After each run the policy (rp_decide, its RP_ACTION) says what comes next; this script does it:
#   ok         exit 0: the job is done.
#   restart    wait for the workers again (the mpi-operator recreates a lost worker pod), log one
#              line (what failed, the restart, the budget left) and run the same command again
#              in this container; it resumes from the checkpoint (resume = "auto").
#   requeue    this pod's in-place restarts (TG_LAUNCH_MAX_IN_PLACE, planned ones included) are
#              used up: exit with the code, and restartPolicy OnFailure restarts the container
#              (counted against runPolicy.backoffLimit), as it does for every later run of this
#              pod that goes on; a job that expects many stops (--max-quarantined) needs the two
#              limits together above them.
#   fail       a permanent code, input that fails the same way again (2 usage, 3 data, 4
#              checkpoint, 7 labels, 8 batch data, 9 device-side assert, 10 non-finite, 13 out of
#              memory);
#   repeated   a failure whose fingerprint equals the previous failure's: it came back from the
#              same checkpoint;
#   exhausted  a failure with none of TG_LAUNCH_MAX_FAILURES left: for these three, write a
#              marker into TG_LAUNCH_STATE_DIR (a pod-scoped emptyDir: it survives container
#              restarts, not the pod) and exit with the code; a restarted container finds the
#              marker and exits with the same code at once, until runPolicy.backoffLimit fails
#              the job.
#   ending     the pod got SIGTERM: exit with the code (12 normally).
# Planned stops restart in place without spending a failure: 12 without SIGTERM (a worker pod
# deleted: its ranks checkpointed) and 15 (bad samples set aside; trainguard's --max-quarantined
# bounds those). Every other code (5 comm, 6 peer, 11 stall, 14 GPU fault, 1, a signal) spends one
# of TG_LAUNCH_MAX_FAILURES, counted over the job's life in TG_LAUNCH_POLICY_DIR (on the runs
# volume: a restarted container or a new launcher pod goes on counting). A GPU fault names its
# node: an MPIJob cannot move a worker off it, so the log says to cordon it.
#
# Ranks started over ssh get sshd's environment, not the worker pod's nor this one's. So when the
# command is mpirun (or mpiexec), every NCCL_*, TRAINGUARD_* and CUDA_* variable set in this
# script's environment is passed to the ranks with `-x NAME` (mpirun reads the value here, so any
# value travels as it is), unless the command line already has a -x for that name: set such
# variables on the launcher container (k8s/mpijob.yaml), not on the workers. OMPI_MCA_* variables
# need nothing: mpirun passes them to its daemons and the ranks itself.
#
# Each run exports TRAINGUARD_RESTART_COUNT, the number of earlier runs of the job (forwarded as
# above), so that trainguard logs and exports it. Before each run this script waits,
# bounded, until every host of the MPI hostfile accepts connections on the ssh port, so that a
# restart after a lost worker does not fail to start mpirun.
#
# Settings (environment, all optional; not TRAINGUARD_*: trainguard refuses unknown ones):
#   TG_LAUNCH_STATE_DIR        folder of the marker, pod-scoped (default /var/run/trainguard)
#   TG_LAUNCH_POLICY_DIR       the policy's counters and last fingerprint, to be kept for the
#                              job's life (default TG_LAUNCH_STATE_DIR: then they last as long as
#                              the pod)
#   TG_LAUNCH_POD_NAME         this pod's name: its in-place restarts are counted under it (default
#                              $HOSTNAME; the mpi-operator gives every launcher pod the same
#                              hostname, so k8s/mpijob.yaml sets it from metadata.name)
#   TG_LAUNCH_PERMANENT_CODES  exit codes not to retry (default "2 3 4 7 8 9 10 13")
#   TG_LAUNCH_MAX_FAILURES     failures restarted over the job's life; the next one ends it
#                              (default 3)
#   TG_LAUNCH_MAX_IN_PLACE     restarts in this pod before one goes through a container restart
#                              (default 5)
#   TG_LAUNCH_FAILURE_FILE     trainguard's failure fingerprint (default: none, no repeat check)
#   TG_LAUNCH_WAIT_S           seconds to wait for the workers (default 300; 0: do not wait)
#   TG_LAUNCH_SSH_PORT         the workers' sshd port (default 2222, as in k8s/Dockerfile)
#   OMPI_MCA_orte_default_hostfile  the hostfile (the mpi-operator sets it)
set -euo pipefail

policy=$(dirname "$0")/../recovery/restart_policy.sh
[[ -r $policy ]] || policy=/usr/local/lib/trainguard/restart_policy.sh
[[ -r $policy ]] || {
  echo "[trainguard-launch] $policy is missing: the image must install recovery/restart_policy.sh" \
    "there (k8s/Dockerfile)" >&2
  exit 2
}
# shellcheck source-path=SCRIPTDIR source=../recovery/restart_policy.sh
source "$policy"

state_dir=${TG_LAUNCH_STATE_DIR:-/var/run/trainguard}
failure_file=${TG_LAUNCH_FAILURE_FILE:-}
wait_s=${TG_LAUNCH_WAIT_S:-300}
ssh_port=${TG_LAUNCH_SSH_PORT:-2222}
marker=$state_dir/permanent-failure
# The restart policy's settings. 1 is retried here, unlike the policy's default: mpirun also exits
# 1 when it cannot start the ranks (a worker not reachable yet, a recreated worker pod).
RP_PERMANENT_CODES=${TG_LAUNCH_PERMANENT_CODES:-2 3 4 7 8 9 10 13}
RP_MAX_FAILURES=${TG_LAUNCH_MAX_FAILURES:-3}
RP_MAX_IN_PLACE=${TG_LAUNCH_MAX_IN_PLACE:-5}
RP_STATE_DIR=${TG_LAUNCH_POLICY_DIR:-$state_dir}
RP_ALLOCATION=${TG_LAUNCH_POD_NAME:-$HOSTNAME}

say() { printf '[trainguard-launch] %s\n' "$*" >&2; }

meaning() {
  case $1 in
    0) echo "success" ;;
    1) echo "internal error, or mpirun could not start the ranks" ;;
    2) echo "usage: a bad flag, config file entry or TRAINGUARD_* variable" ;;
    3) echo "dataset missing, unreadable or malformed" ;;
    4) echo "checkpoint unwritable, missing, corrupted or from another run shape" ;;
    5) echo "MPI / NCCL failure" ;;
    6) echo "another rank failed or vanished" ;;
    7) echo "label validation failed" ;;
    8) echo "a step failed on its data (a target out of range)" ;;
    9) echo "CUDA device-side assert" ;;
    10) echo "non-finite loss, gradient or input" ;;
    11) echo "stall: a step or collective overran --step-timeout" ;;
    12) echo "preempted: checkpoint written on a stop request" ;;
    13) echo "out of memory: lower batch-size" ;;
    14) echo "GPU fault: the GPU or its node failed" ;;
    15) echo "bad samples set aside (--bad-samples quarantine): to be continued without them" ;;
    *) if (($1 > 128)); then echo "killed by signal $(($1 - 128))"; else echo "mpirun's own exit code"; fi ;;
  esac
}

# Exits 2, naming the setting, when a count setting is not a whole number or a folder this script
# writes (the marker's, the policy's) cannot be written.
check_settings() {
  local name
  for name in TG_LAUNCH_MAX_FAILURES TG_LAUNCH_MAX_IN_PLACE TG_LAUNCH_WAIT_S TG_LAUNCH_SSH_PORT; do
    [[ ${!name:-0} =~ ^[0-9]+$ ]] || {
      say "$name=${!name}: give a whole number (see the settings in k8s/trainguard-launch.sh)"
      exit 2
    }
  done
  if ! mkdir -p "$state_dir" 2>/dev/null || [[ ! -w $state_dir ]]; then
    say "TG_LAUNCH_STATE_DIR=$state_dir cannot be written by uid $(id -u): mount an emptyDir there" \
      "(k8s/mpijob.yaml) or point TG_LAUNCH_STATE_DIR at a writable folder"
    exit 2
  fi
  if ! mkdir -p "$RP_STATE_DIR" 2>/dev/null || [[ ! -w $RP_STATE_DIR ]]; then
    say "TG_LAUNCH_POLICY_DIR=$RP_STATE_DIR cannot be written by uid $(id -u): mount the runs volume" \
      "there (k8s/mpijob.yaml) or point TG_LAUNCH_POLICY_DIR at a writable folder"
    exit 2
  fi
}

# Counts this run in the policy's folder and exports the number of earlier runs of the job, and
# of those the restarts in place.
count_attempt() {
  rp_bump runs
  export TRAINGUARD_RESTART_COUNT=$(($(rp_count runs) - 1))
  TRAINGUARD_RESTARTS_IN_PLACE=$(rp_count in-place)
  export TRAINGUARD_RESTARTS_IN_PLACE
}

# Exits at once with the code of an earlier run in this pod that ended the job.
refuse_after_permanent_failure() {
  [[ -f $marker ]] || return 0
  local code reason
  read -r code reason <"$marker" || true
  [[ $code =~ ^[0-9]+$ ]] || code=1
  say "an earlier run in this pod ended the job with exit $code ($reason): not training again." \
    "Fix the cause (the log of that run: kubectl logs --previous), then delete and re-create the MPIJob."
  exit "$code"
}

# Writes the marker that refuse_after_permanent_failure reads: CODE REASON.
mark_permanent() {
  mkdir -p "$state_dir"
  printf '%s %s\n' "$1" "$2" >"$marker"
}

# Waits until every hostfile host accepts TCP connections on the ssh port, at most wait_s seconds.
wait_for_workers() {
  local hostfile=${OMPI_MCA_orte_default_hostfile:-} deadline host _
  [[ -n $hostfile && -r $hostfile ]] && ((wait_s > 0)) || return 0
  deadline=$((SECONDS + wait_s))
  while read -r host _; do
    [[ -n $host && $host != \#* ]] || continue
    # shellcheck disable=SC2016 # $0 and $1 expand in the inner shell
    until timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$ssh_port" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        say "worker $host:$ssh_port still unreachable after ${wait_s} s; starting mpirun anyway"
        return 0
      fi
      sleep 2
    done
  done <"$hostfile"
}

# SIGTERM/SIGINT while mpirun runs: one SIGUSR1 to mpirun, which forwards it to every rank. A
# signal between the start of mpirun and `child=$!` is passed on right after that line.
# shellcheck disable=SC2317 # called from a trap
on_stop() {
  signalled=1
  terminated=1
  if [[ -z $child ]]; then
    pending=1
    return 0
  fi
  ((!stop_sent)) || return 0
  stop_sent=1
  say "stop requested (SIGTERM): sending SIGUSR1 to mpirun for an agreed checkpoint; waiting for the ranks"
  kill -USR1 "$child" 2>/dev/null || true
}

# Sets `status` to the child's exit status. A trapped signal interrupts `wait` (status > 128)
# while the child runs on, so wait again; 127 after a reported status means it was reported.
wait_child() {
  local s
  status=
  while :; do
    signalled=0
    s=0
    wait "$child" || s=$?
    if ((s == 127)) && [[ -n $status ]]; then break; fi
    status=$s
    ((signalled)) || break
  done
}

# with_forwarded_env COMMAND...: sets `command` to COMMAND with `-x NAME` after its first word for
# every NCCL_*, TRAINGUARD_* and CUDA_* variable exported here that COMMAND does not pass already,
# when that word is mpirun or mpiexec; to COMMAND unchanged otherwise.
with_forwarded_env() {
  command=("$@")
  case ${1##*/} in
    mpirun | mpiexec) ;;
    *) return 0 ;;
  esac
  local given=" " name i
  local -a extra=()
  for ((i = 1; i < $# - 1; i++)); do
    [[ ${command[i]} != -x ]] || given+="${command[i + 1]%%=*} "
  done
  while read -r name; do
    [[ $given == *" $name "* ]] || extra+=(-x "$name")
  done < <(compgen -e | grep -E '^(NCCL|TRAINGUARD|CUDA)_' | sort)
  command=("$1" "${extra[@]}" "${@:2}")
}

# run_once COMMAND...: one run of COMMAND with the stop forwarding; sets `status` to its exit code
# and `terminated` to 1 when the pod got SIGTERM (or SIGINT) meanwhile.
run_once() {
  count_attempt
  [[ -z $failure_file ]] || rm -f "$failure_file" # a failure of this run writes its own
  stop_sent=0 signalled=0 pending=0 terminated=0 child=
  with_forwarded_env "$@" # after count_attempt: its counts are forwarded too
  trap on_stop TERM INT
  "${command[@]}" &
  child=$!
  if ((pending)); then on_stop; fi
  wait_child
  trap 'say "stopped (SIGTERM) between two runs of mpirun"; exit 143' TERM INT
}

# left BUDGET USED: prints what is left of BUDGET (0 at least).
left() { echo $(($1 > $2 ? $1 - $2 : 0)); }

# What is left of the job's failures and of this pod's in-place restarts, for the log lines.
budget() {
  echo "left: $(left "$RP_MAX_FAILURES" "$(rp_count failures)") of TG_LAUNCH_MAX_FAILURES=$RP_MAX_FAILURES" \
    "failure(s) for the job, $(left "$RP_MAX_IN_PLACE" "$(rp_count "in-place.$RP_ALLOCATION")") of" \
    "TG_LAUNCH_MAX_IN_PLACE=$RP_MAX_IN_PLACE in-place restart(s) in this pod"
}

# What the run's code is to the policy: a failure, or a planned stop.
what_ended() {
  if [[ $(rp_kind "$status") == planned ]]; then echo "a planned stop (free)"; else echo "a failure"; fi
}

main() {
  (($# > 0)) || {
    say "usage: trainguard-launch mpirun [mpirun flags] trainguard train [flags]"
    exit 2
  }
  trap 'say "stopped before mpirun started"; exit 143' TERM INT
  check_settings
  refuse_after_permanent_failure
  local why
  while :; do
    wait_for_workers
    run_once "$@"
    rp_decide "$status" "$terminated" "$((!terminated))" "$failure_file" # sets RP_ACTION
    if ((status == 14)); then
      say "GPU fault: $(cat "$failure_file" 2>/dev/null || echo "see the ranks' log"); cordon that node" \
        "(kubectl cordon NODE) and delete its worker pod, so that the mpi-operator recreates it elsewhere"
    fi
    case $RP_ACTION in
      ok)
        say "done: exit 0"
        exit 0
        ;;
      restart)
        say "exit $status ($(meaning "$status")), $(what_ended): restarting in place (restart" \
          "$(rp_count "in-place.$RP_ALLOCATION") in this pod; $(budget)); run $(($(rp_count runs) + 1))" \
          "resumes from the checkpoint once the workers answer"
        ;;
      requeue)
        say "exit $status ($(meaning "$status")), $(what_ended): the in-place restarts of this pod are" \
          "used up ($(budget)): exiting $status so that Kubernetes restarts the container" \
          "(runPolicy.backoffLimit counts it), which resumes from the checkpoint"
        exit "$status"
        ;;
      ending)
        say "exit $status ($(meaning "$status")): stopped by SIGTERM (the pod is being deleted): not run again here"
        exit "$status"
        ;;
      *)
        why=$(meaning "$status")
        case $RP_ACTION in
          repeated) why+="; the failure the last restart was for came back: $(cat "$failure_file")" ;;
          exhausted) why+="; $(rp_count failures) failure(s) spent already, TG_LAUNCH_MAX_FAILURES=$RP_MAX_FAILURES" ;;
        esac
        mark_permanent "$status" "$why"
        say "exit $status ($why): $RP_ACTION: not run again; a restart of this container exits at once"
        exit "$status"
        ;;
    esac
  done
}

main "$@"
