# A throwaway single-node Slurm for the tests, sourced by tests/slurm/cases.sh: slurmctld and
# slurmd started by hand (no systemd, no munge) from a slurm.conf under a temporary folder, with
# two fake GPUs (character devices made with mknod) so that --gres=gpu / --gpus-per-task
# scheduling and CUDA_VISIBLE_DEVICES are real while trainguard itself runs on the CPU.
# Needs root (SlurmUser=root, mknod) and Debian's slurmctld, slurmd and slurm-client.
# Every function that waits has a deadline and fails with a message that says what it waited for.
# shellcheck shell=bash

# shellcheck source-path=SCRIPTDIR source=../support/slurm_conf.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/slurm_conf.sh"

# fail MESSAGE...: prints the message (and the daemons' log tails) and exits 1.
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  if [ -n "${SLURM_DIR:-}" ]; then
    local log
    for log in "$SLURM_DIR/slurmctld.log" "$SLURM_DIR/slurmd.log"; do
      [ -f "$log" ] && { printf -- '--- last lines of %s\n' "$log" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  exit 1
}

# say MESSAGE...: a progress line on stderr, with the seconds since the case started.
say() { printf '[slurm-test %3ds] %s\n' "$SECONDS" "$*" >&2; }

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# slurm_prerequisites: returns 0 when this machine can run the throwaway Slurm, else prints why
# on stdout and returns 1.
slurm_prerequisites() {
  local tool
  for tool in slurmctld slurmd sbatch srun scontrol scancel sinfo python3; do
    command -v "$tool" >/dev/null ||
      { echo "$tool is not installed (Debian: slurmctld slurmd slurm-client)"; return 1; }
  done
  [ "$(id -u)" -eq 0 ] || { echo "the throwaway Slurm runs its daemons as root (SlurmUser=root)"; return 1; }
  return 0
}

# slurm_write_conf DIR: writes DIR/slurm.conf and DIR/gres.conf (two fake GPUs, DIR/dev/nvidia0
# and nvidia1) for one node named after this host, with free ports and every state file under DIR.
slurm_write_conf() {
  local dir=$1 host cpus ctld_port slurmd_port
  host=$(hostname)
  cpus=$(getconf _NPROCESSORS_ONLN) # not nproc: it follows OMP_NUM_THREADS, which ctest sets to 1
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
  mkdir -p "$dir/state" "$dir/spool" "$dir/dev" "$dir/tmp"
  # gres/gpu wants character devices; these are /dev/null's (major 1, minor 3).
  mknod "$dir/dev/nvidia0" c 1 3
  mknod "$dir/dev/nvidia1" c 1 3
  cat >"$dir/gres.conf" <<EOF
AutoDetect=off
NodeName=$host Name=gpu Type=fake File=$dir/dev/nvidia0
NodeName=$host Name=gpu Type=fake File=$dir/dev/nvidia1
EOF
  {
    cat <<EOF
ClusterName=tgtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
GresTypes=gpu
SlurmdSpoolDir=$dir/spool
TmpFS=$dir/tmp
SlurmdPidFile=$dir/slurmd.pid
SlurmdLogFile=$dir/slurmd.log
EOF
    slurm_common_conf "$dir"
    cat <<EOF
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Gres=gpu:fake:2 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  } >"$dir/slurm.conf"
}

# slurm_start DIR: writes the configuration, starts slurmctld then slurmd, exports SLURM_CONF
# and SLURM_DIR, and returns once the node is idle (fails after 20 s). Call slurm_stop
# afterwards (cases.sh does it from an EXIT trap).
slurm_start() {
  SLURM_DIR=$1
  export SLURM_DIR SLURM_CONF=$1/slurm.conf
  slurm_write_conf "$SLURM_DIR"
  slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
  slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
  local deadline=$((SECONDS + 20)) state=""
  while ((SECONDS < deadline)); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1)
    [ "$state" = idle ] && { say "slurm is up: node $(hostname) idle ($SLURM_CONF)"; return 0; }
    sleep 0.2
  done
  fail "the node did not become idle within 20 s (last state: '${state:-no answer}')"
}

# slurm_stop: cancels every job of the throwaway cluster, waits (at most 15 s) for their
# processes, stops slurmd and slurmctld by their pid files (SIGTERM, then SIGKILL after 5 s),
# and SIGKILLs any process left that carries this cluster's SLURM_CONF in its environment.
# Safe to call twice and when the daemons never started.
slurm_stop() {
  [ -n "${SLURM_DIR:-}" ] && [ -d "$SLURM_DIR" ] || return 0
  if [ -f "$SLURM_DIR/slurmctld.pid" ]; then
    scancel --quiet --partition=test 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)) && [ -n "$(squeue -h -t running,completing -o %i 2>/dev/null)" ]; do sleep 0.2; done
  fi
  # Both at once (each takes 1-2 s to stop), then SIGKILL for whichever is still there after 5 s.
  local daemon pid pids=()
  for daemon in slurmd slurmctld; do
    pid=$(cat "$SLURM_DIR/$daemon.pid" 2>/dev/null) || continue
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  local deadline=$((SECONDS + 5))
  for pid in "${pids[@]}"; do
    while ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Stragglers (a task whose slurmstepd went away): only processes of this cluster, by pid.
  local environ
  for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}
    pid=${pid%/environ}
    if [ "$pid" != $$ ] && grep -qxzF "SLURM_CONF=$SLURM_CONF" "$environ" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$SLURM_DIR/slurmctld.pid" "$SLURM_DIR/slurmd.pid"
}

# job_field JOB FIELD: prints FIELD (e.g. JobState, ExitCode, Restarts) of `scontrol show job`.
job_field() {
  scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# wait_job_state JOB SECONDS STATE...: returns once JOB is in one of the states; fails after
# SECONDS, printing the job and the last lines of its output file.
wait_job_state() {
  local job=$1 limit=$2 state=""
  shift 2
  local deadline=$((SECONDS + limit)) want
  while ((SECONDS < deadline)); do
    state=$(job_field "$job" JobState)
    for want in "$@"; do [ "$state" = "$want" ] && return 0; done
    sleep 0.3
  done
  job_failure "$job" "job $job did not reach state $* within $limit s (state: ${state:-unknown})"
}

# wait_output JOB FILE SECONDS PATTERN: returns once FILE has a line matching the extended regex
# PATTERN; fails after SECONDS (or when the job ended first) with the job and the file's tail.
wait_output() {
  local job=$1 file=$2 limit=$3 pattern=$4
  local deadline=$((SECONDS + limit)) state
  while ((SECONDS < deadline)); do
    grep -qE -- "$pattern" "$file" 2>/dev/null && return 0
    state=$(job_field "$job" JobState)
    case "$state" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY)
        grep -qE -- "$pattern" "$file" 2>/dev/null && return 0
        job_failure "$job" "job $job ended ($state) before its output showed /$pattern/"
        ;;
    esac
    sleep 0.3
  done
  job_failure "$job" "job $job's output did not show /$pattern/ within $limit s"
}

# job_failure JOB MESSAGE: prints the job's record and its output file's tail, then fails.
job_failure() {
  local job=$1 out
  shift
  scontrol show job "$job" >&2 2>/dev/null || true
  out=$(job_field "$job" StdOut)
  [ -n "$out" ] && [ -f "$out" ] && { printf -- '--- last lines of %s\n' "$out" >&2; tail -n 40 "$out" >&2; }
  fail "$@"
}
