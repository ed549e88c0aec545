# trainguard's restart policy: what to do after a run of `trainguard train` ended with an exit
# code, shared by slurm/job.sh (a Slurm batch job) and k8s/trainguard-launch.sh (the MPIJob
# launcher). The policy decides; each platform does (Slurm: a new step in the allocation, or a
# requeue; Kubernetes: mpirun again in the launcher pod, or a container restart).
# Functions only: sourcing it runs nothing. Every name starts with rp_.
#
# The rules (docs/slurm.md, "Recovery in the allocation"):
# - 0 is done. The permanent codes (RP_PERMANENT_CODES) would fail the same way again: usage,
#   data, checkpoint, labels, a batch's data, a device-side assert, non-finite values, memory.
# - Planned stops are free: 12 (a stop on request wrote a checkpoint: the time limit, a
#   preemption, an operator) and 15 (bad samples set aside: trainguard's --max-quarantined
#   bounds them) never spend the failure budget.
# - Every other code is a failure that a new run may not meet: 5 (communication), 6 (a peer
#   failed), 11 (a stall: a rank silent or stuck), 14 (a GPU fault), 1 (internal), a rank killed
#   by a signal (128+N). Each spends one of RP_MAX_FAILURES over the job's whole life; with none
#   left the job ends ("exhausted"). A failure whose fingerprint (the line trainguard writes
#   beside its checkpoint: exit code, kind, step, host) equals the previous failure's came back
#   from the same checkpoint: the job ends ("repeated") instead of looping.
# - A run that goes on restarts in place (a new run in the same allocation or pod) while this
#   allocation has in-place restarts left (RP_MAX_IN_PLACE) and the platform says it can
#   (enough nodes); else it goes back through the scheduler ("requeue"). A stop the platform
#   itself asked for (SIGTERM: cancel, time limit, pod deletion) is "ending": not continued here.
#
# State (RP_STATE_DIR, shared by every run of the job: a requeue or a new pod keeps it):
#   failures            the failures spent so far
#   last-failure        the fingerprint of the last failure
#   in-place.<ALLOC>    the in-place restarts of allocation ALLOC (RP_ALLOCATION: a Slurm
#                       requeue count, a pod name)
#   in-place            the in-place restarts of the whole job
#   runs                the runs started so far (the platform counts them)
# shellcheck shell=bash

# Defaults; the caller may set each before calling.
: "${RP_PERMANENT_CODES:=1 2 3 4 7 8 9 10 13}"
: "${RP_MAX_FAILURES:=3}"
: "${RP_MAX_IN_PLACE:=5}"
: "${RP_ALLOCATION:=0}"

# rp_kind CODE: prints ok, planned, permanent or failure (the classes above).
rp_kind() {
  case "$1" in
    0) echo ok ;;
    12 | 15) echo planned ;;
    *) if [[ " $RP_PERMANENT_CODES " == *" $1 "* ]]; then echo permanent; else echo failure; fi ;;
  esac
}

# rp_count NAME: prints the counter RP_STATE_DIR/NAME (0 when absent or not a number).
rp_count() {
  local n
  n=$(cat "$RP_STATE_DIR/$1" 2>/dev/null) || n=0
  [[ $n =~ ^[0-9]+$ ]] || n=0
  echo "$n"
}

# rp_bump NAME: adds one to the counter RP_STATE_DIR/NAME.
rp_bump() {
  mkdir -p "$RP_STATE_DIR"
  echo "$(($(rp_count "$1") + 1))" >"$RP_STATE_DIR/$1.tmp" && mv -f "$RP_STATE_DIR/$1.tmp" "$RP_STATE_DIR/$1"
}

# rp_repeated FINGERPRINT_FILE: whether this failure's fingerprint is the last failure's; the new
# one is remembered either way. A run that left no fingerprint (killed by a signal, say) repeats
# nothing.
rp_repeated() {
  local now
  now=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$now" ] || return 1
  if [ "$now" = "$(cat "$RP_STATE_DIR/last-failure" 2>/dev/null)" ]; then return 0; fi
  mkdir -p "$RP_STATE_DIR"
  printf '%s\n' "$now" >"$RP_STATE_DIR/last-failure"
  return 1
}

# rp_decide CODE TERMINATED IN_PLACE_POSSIBLE FINGERPRINT_FILE: sets RP_ACTION to what follows a
# run that ended with CODE, and RP_REASON to a short phrase saying why (for the log line), and
# counts it in RP_STATE_DIR. Call it directly, not in $(...), or the counts stay but the two
# variables are lost. RP_ACTION is one of:
#   ok         CODE 0
#   fail       a permanent code
#   ending     TERMINATED is 1: the platform is stopping the job (not continued here)
#   repeated   a failure with the previous failure's fingerprint
#   exhausted  a failure with no failure left in RP_MAX_FAILURES
#   restart    go on in place: IN_PLACE_POSSIBLE is 1 and this allocation has restarts left
#   requeue    go on through the scheduler
# shellcheck disable=SC2034 # RP_ACTION and RP_REASON are read by the caller
rp_decide() {
  local code=$1 terminated=$2 in_place=$3 fingerprint=$4 kind used
  kind=$(rp_kind "$code")
  RP_REASON=""
  case "$kind" in
    ok) RP_ACTION=ok; return ;;
    permanent) RP_REASON="a permanent failure: the same input fails the same way"; RP_ACTION=fail; return ;;
  esac
  if ((terminated)); then
    RP_REASON="the platform is ending the job"
    RP_ACTION=ending
    return
  fi
  if [ "$kind" = failure ]; then
    if rp_repeated "$fingerprint"; then
      RP_REASON="the run met the failure the last restart was for again ($(cat "$fingerprint"))"
      RP_ACTION=repeated
      return
    fi
    used=$(rp_count failures)
    if ((used >= RP_MAX_FAILURES)); then
      RP_REASON="$used failure(s) already, of at most $RP_MAX_FAILURES"
      RP_ACTION=exhausted
      return
    fi
    rp_bump failures
    RP_REASON="failure $((used + 1)) of at most $RP_MAX_FAILURES"
  else
    RP_REASON="a planned stop (free)"
  fi
  used=$(rp_count "in-place.$RP_ALLOCATION")
  if ((in_place)) && ((used < RP_MAX_IN_PLACE)); then
    rp_bump "in-place.$RP_ALLOCATION"
    rp_bump in-place
    RP_REASON+="; in-place restart $((used + 1)) of at most $RP_MAX_IN_PLACE"
    RP_ACTION=restart
  else
    ((in_place)) && RP_REASON+="; $used in-place restart(s) already, of at most $RP_MAX_IN_PLACE"
    RP_ACTION=requeue
  fi
}
