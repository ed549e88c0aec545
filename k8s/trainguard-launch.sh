#!/usr/bin/env bash
# The MPIJob launcher's entrypoint (k8s/mpijob.yaml, installed as /usr/local/bin/trainguard-launch
# by k8s/Dockerfile): runs its arguments, `mpirun ... trainguard train ...`, and turns the pod's
# signals and trainguard's exit codes into what Kubernetes should do.
#
#   trainguard-launch mpirun [mpirun flags] trainguard train [trainguard flags]
#
# SIGTERM (pod deletion, node drain, preemption, `kubectl delete mpijob`) becomes SIGUSR1 for
# mpirun. OpenMPI 4.1's mpirun forwards SIGUSR1 to every rank at once, but SIGTERM only after
# odls_base_sigkill_timeout (1 s) and SIGKILL one timeout later, and a rank reads SIGTERM under
# mpirun as a teardown (exit 6). On SIGUSR1 the ranks agree on a step, rank 0 writes the
# checkpoint and every rank exits 12 (preempted); this script waits for mpirun and exits with its
# code. terminationGracePeriodSeconds must leave time for that.
#
# Exit codes (launcher/exit_codes.h): 0 ends the job. 2 3 4 7 8 9 10 13 (usage, data, checkpoint,
# labels, batch data, device-side assert, non-finite, out of memory) are permanent: the same input
# fails the same way. The script then writes a marker into a pod-scoped folder (an emptyDir: it survives container
# restarts, not the pod), and when restartPolicy OnFailure restarts the container it exits with the
# same code at once instead of training again, until runPolicy.backoffLimit fails the job. Every
# other code (1 internal or mpirun's own start failure, 5 comm, 6 peer, 11 stall, 12 preempted, 14
# GPU fault, 15 bad samples set aside, a signal) is retried: the restart resumes from the
# checkpoint (resume = "auto"); each retry counts against runPolicy.backoffLimit, so a job that
# quarantines needs a backoffLimit above its --max-quarantined. A
# GPU fault names its node: an MPIJob cannot exclude it from the restart, so the log says to
# cordon it.
#
# Requeue loops end: trainguard writes a failure's fingerprint (exit code, kind, step, a GPU
# fault's host) to TG_LAUNCH_FAILURE_FILE (the checkpoint's path plus ".failure"). When the
# failure a restart was for comes back, the same from the same checkpoint, the attempt is
# treated as permanent. Each attempt exports TRAINGUARD_RESTART_COUNT (mpirun passes it on with
# -x) so that trainguard logs and exports it.
#
# Before starting mpirun it waits, bounded, until every host of the MPI hostfile accepts
# connections on the ssh port, so that a restart after a lost worker does not spend a retry.
#
# Settings (environment, all optional; not TRAINGUARD_*: trainguard refuses unknown ones):
#   TG_LAUNCH_STATE_DIR        folder of the marker (default /var/run/trainguard)
#   TG_LAUNCH_PERMANENT_CODES  exit codes not to retry (default "2 3 4 7 8 9 10 13")
#   TG_LAUNCH_FAILURE_FILE     trainguard's failure fingerprint (default: none, no loop check)
#   TG_LAUNCH_WAIT_S           seconds to wait for the workers (default 300; 0: do not wait)
#   TG_LAUNCH_SSH_PORT         the workers' sshd port (default 2222, as in k8s/Dockerfile)
#   OMPI_MCA_orte_default_hostfile  the hostfile (the mpi-operator sets it)
set -euo pipefail

state_dir=${TG_LAUNCH_STATE_DIR:-/var/run/trainguard}
permanent_codes=${TG_LAUNCH_PERMANENT_CODES:-2 3 4 7 8 9 10 13}
failure_file=${TG_LAUNCH_FAILURE_FILE:-}
wait_s=${TG_LAUNCH_WAIT_S:-300}
ssh_port=${TG_LAUNCH_SSH_PORT:-2222}
marker=$state_dir/permanent-failure
attempts=$state_dir/attempts             # attempts started in this pod
retried_failure=$state_dir/retried-failure # the fingerprint the last retry was for

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

is_permanent() { [[ " $permanent_codes " == *" $1 "* ]]; }

# Whether this attempt's failure (the fingerprint file) is the one the last retry was for; if not,
# it is remembered for the next attempt.
same_failure_again() {
  local now
  [[ -n $failure_file ]] || return 1
  now=$(cat "$failure_file" 2>/dev/null) || return 1
  [[ -n $now ]] || return 1
  [[ $now == "$(cat "$retried_failure" 2>/dev/null)" ]] && return 0
  mkdir -p "$state_dir"
  printf '%s\n' "$now" >"$retried_failure"
  return 1
}

# Counts this attempt and exports the number of earlier ones for trainguard.
count_attempt() {
  local before=0
  mkdir -p "$state_dir"
  before=$(cat "$attempts" 2>/dev/null) || before=0
  [[ $before =~ ^[0-9]+$ ]] || before=0
  printf '%s\n' "$((before + 1))" >"$attempts"
  export TRAINGUARD_RESTART_COUNT=$before
}

# Exits at once with the code of an earlier permanent failure in this pod.
refuse_after_permanent_failure() {
  [[ -f $marker ]] || return 0
  local code reason
  read -r code reason <"$marker" || true
  [[ $code =~ ^[0-9]+$ ]] || code=1
  say "an earlier attempt in this pod failed permanently with exit $code ($reason): not training again." \
    "Fix the cause (the log of that attempt: kubectl logs --previous), then delete and re-create the MPIJob."
  exit "$code"
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

main() {
  (($# > 0)) || {
    say "usage: trainguard-launch mpirun [mpirun flags] trainguard train [flags]"
    exit 2
  }
  trap 'say "stopped before mpirun started"; exit 143' TERM INT
  refuse_after_permanent_failure
  wait_for_workers
  count_attempt
  [[ -z $failure_file ]] || rm -f "$failure_file" # a failure of this attempt writes its own

  stop_sent=0 signalled=0 pending=0 child=
  trap on_stop TERM INT
  "$@" &
  child=$!
  if ((pending)); then on_stop; fi
  wait_child
  trap - TERM INT

  local reason
  reason=$(meaning "$status")
  if ((status == 0)); then
    say "done: exit 0"
  elif is_permanent "$status" || { ((status != 12 && status != 15)) && same_failure_again; }; then
    is_permanent "$status" || reason="the failure the last restart was for came back: $(cat "$failure_file")"
    mkdir -p "$state_dir"
    printf '%s %s\n' "$status" "$reason" >"$marker"
    say "exit $status ($reason): permanent, not retried: a restart of this container exits at once"
  else
    if ((status == 14)); then
      say "GPU fault: $(cat "$failure_file" 2>/dev/null || echo "see the ranks' log"); cordon that node" \
        "(kubectl cordon NODE) so that the restarted workers are scheduled elsewhere"
    fi
    say "exit $status ($(meaning "$status")): retried: the restarted container resumes from the checkpoint"
  fi
  exit "$status"
}

main "$@"
