#!/usr/bin/env bash
# The MPIJob worker's entrypoint (k8s/mpijob.yaml, installed as /usr/local/bin/trainguard-worker
# by k8s/Dockerfile): runs the daemon given as arguments (sshd, which mpirun on the launcher uses
# to start its orted here) and, on SIGTERM (pod deletion, node drain, preemption), asks this pod's
# trainguard ranks for a checkpoint before the pod goes away.
#
#   trainguard-worker /usr/sbin/sshd -De -f /home/mpiuser/.sshd_config
#
# Kubernetes sends SIGTERM to the container's first process only: the ranks, children of orted
# (started over ssh), would see nothing until the SIGKILL at the end of the grace period. So on
# SIGTERM this script sends SIGUSR1 to every child of orted (the ranks; a rank's own children,
# e.g. a diagnosis, are left alone): the ranks agree on a step, rank 0 writes the checkpoint and
# every rank exits 12. The script waits for them (terminationGracePeriodSeconds bounds it), then
# stops the daemon. mpirun on the launcher then exits 12 and the launcher is restarted.
#
# Settings (environment, optional; not TRAINGUARD_*: trainguard refuses unknown ones):
#   TG_WORKER_RANK_PARENT  process name of the ranks' parent (default orted, OpenMPI 4's daemon)
set -euo pipefail

parent_name=${TG_WORKER_RANK_PARENT:-orted}

say() { printf '[trainguard-worker] %s\n' "$*" >&2; }

# The pids of the ranks in this container (children of the rank parent), one a line.
# shellcheck disable=SC2317 # called from the trap's handler
ranks() {
  local parents
  parents=$(pgrep -d, -x "$parent_name") || return 0
  pgrep -P "$parents" || true
}

# shellcheck disable=SC2317 # called from a trap
on_stop() {
  signalled=1
  ((!stopping)) || return 0
  stopping=1
  local pids
  pids=$(ranks)
  if [[ -n $pids ]]; then
    say "stop requested (SIGTERM): SIGUSR1 to the ranks of this pod (pids ${pids//$'\n'/ }) for an agreed checkpoint"
    # shellcheck disable=SC2086 # one pid per word
    kill -USR1 $pids 2>/dev/null || true
    while [[ -n $(ranks) ]]; do sleep 1; done
    say "the ranks of this pod have ended"
  fi
  [[ -z $daemon ]] || kill -TERM "$daemon" 2>/dev/null || true
}

(($# > 0)) || {
  say "usage: trainguard-worker DAEMON [ARGS...]  (e.g. /usr/sbin/sshd -De -f /home/mpiuser/.sshd_config)"
  exit 2
}
stopping=0 signalled=0 daemon=
trap on_stop TERM INT
"$@" &
daemon=$!
# A SIGTERM before `daemon=$!` could not stop the daemon: stop it now.
if ((stopping)); then kill -TERM "$daemon" 2>/dev/null || true; fi

# Wait for the daemon; a trapped signal interrupts `wait` while it runs on, so wait again.
status=
while :; do
  signalled=0
  s=0
  wait "$daemon" || s=$?
  if ((s == 127)) && [[ -n $status ]]; then break; fi
  status=$s
  ((signalled)) || break
done
# Stopped on request: the daemon's SIGTERM death is the expected end.
if ((stopping)); then exit 0; fi
say "the daemon ($1) ended with exit $status"
exit "$status"
