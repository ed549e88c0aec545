# Simulated hosts for multi-host tests, sourced by test scripts: 2 to 4 "hosts" h1..hN on this one
# machine, each a Linux network namespace (its own eth0 on one bridge, a private /24 subnet), its
# own host name (UTS namespace), its own /tmp (mount namespace: OpenMPI's and slurmstepd's session
# folders would collide in a shared one) and its own cgroup (cgroup v1 cpu, for mh_slow). The rest
# of the filesystem is shared, as on a cluster with a shared filesystem and node-local /tmp: files
# the hosts must see belong outside /tmp (MH_DIR is under /var/tmp for that reason); a command
# started in a folder under the real /tmp runs in MH_DIR instead.
#
#   source tests/multihost/hosts.sh
#   why=$(mh_prerequisites) || { echo "skipped: $why"; exit 77; }
#   mh_setup 3                      # exports MH_DIR MH_SUBNET MH_N; EXIT trap tears down
#   mh_run h2 hostname              # -> h2
#   mapfile -t args < <(mh_mpirun_args 1)
#   mh_run h1 mpirun "${args[@]}" -x MYVAR ./prog
#   mh_cut h2; mh_heal h2; mh_kill h3; mh_slow h1 20; mh_unslow h1
#   mh_slurm_start                  # slurmctld in the root namespace, one slurmd per host
#
# Cleanup: mh_setup chains mh_teardown in front of the EXIT trap already set (bash runs the EXIT
# trap on exit, on `set -e` failures and on SIGINT/SIGTERM/SIGHUP). A caller that sets its own
# EXIT trap AFTER mh_setup replaces it and must call mh_teardown from that trap itself. A run that
# died without cleaning up (SIGKILL, ctest timeout) is swept by the next mh_setup or mh_teardown:
# every name carries the owner's pid (tgmh<pid>...) and leftovers of dead pids are removed.
#
# Names of run P: namespaces tgmhPh1.., bridge tgmhPbr, bridge-side veths tgmhPh1o.. (eth0
# inside), cgroups /sys/fs/cgroup/cpu/tgmhP/hK, folder /var/tmp/tgmhP.XXXXXX (MH_DIR).
# Addresses: hK = 10.231.X.K/24, the bridge (root namespace) = 10.231.X.254; X is free at setup.
# ARP entries are static (permanent) everywhere, so that a cut host's packets are just dropped: a
# connect to it hangs (no "No route to host" after the ~3 s of a failed ARP resolution).
# Every function that waits has a deadline and fails with a message that says what it waited for.
# Needs root, iproute2, util-linux (unshare, nsenter, flock), python3; mpirun for MPI, Slurm's
# slurmctld/slurmd/slurm-client for mh_slurm_start.
# shellcheck shell=bash

# shellcheck source-path=SCRIPTDIR source=../support/slurm_conf.sh
source "$(dirname "${BASH_SOURCE[0]}")/../support/slurm_conf.sh"

MH_PREFIX=tgmh
MH_CGROUP_ROOT=/sys/fs/cgroup/cpu
MH_BASE=${MH_BASE:-/var/tmp}

# mh_fail MESSAGE...: prints the message (and the Slurm daemons' log tails, if any) and exits 1.
mh_fail() {
  printf 'FAIL: %s\n' "$*" >&2
  if [ -n "${MH_DIR:-}" ] && [ -d "$MH_DIR/slurm" ]; then
    local log
    for log in "$MH_DIR"/slurm/*.log; do
      [ -f "$log" ] && { printf -- '--- last lines of %s\n' "$log" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  exit 1
}

# mh_say MESSAGE...: a progress line on stderr, with the seconds since the script started.
mh_say() { printf '[multihost %3ds] %s\n' "$SECONDS" "$*" >&2; }

# mh_prerequisites: returns 0 when simulated hosts can be made here, else prints why on stdout and
# returns 1 (callers then exit 77, skipped).
mh_prerequisites() {
  local tool
  [ "$(id -u)" -eq 0 ] || { echo "simulated hosts need root (network namespaces, bridges, mounts)"; return 1; }
  for tool in ip unshare nsenter flock python3 mpirun; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed"; return 1; }
  done
  local probe=${MH_PREFIX}probe$$
  if ! ip netns add "$probe" 2>/dev/null; then
    echo "cannot create a network namespace (ip netns add failed)"
    return 1
  fi
  if ! nsenter --net="/run/netns/$probe" -- unshare --uts --mount --propagation private -- \
    sh -c 'hostname mhprobe && mount --bind /var/tmp /tmp' 2>/dev/null; then
    ip netns del "$probe" 2>/dev/null
    echo "cannot enter a network namespace with its own UTS and mount namespace (nsenter/unshare)"
    return 1
  fi
  ip netns del "$probe" 2>/dev/null
  if ! ip link add "${MH_PREFIX}probe$$" type bridge 2>/dev/null; then
    echo "cannot create a bridge (ip link add type bridge failed)"
    return 1
  fi
  ip link del "${MH_PREFIX}probe$$" 2>/dev/null
  return 0
}

# _mh_owner_dead PID: true when no process PID exists (a leftover of a dead run).
_mh_owner_dead() { ! kill -0 "$1" 2>/dev/null; }

# _mh_kill_netns NSNAME: SIGKILLs every process in that namespace, until none is left (5 s at most).
_mh_kill_netns() {
  local ns=$1 pids deadline=$((SECONDS + 5))
  while :; do
    pids=$(ip netns pids "$ns" 2>/dev/null) || return 0
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086 # one pid a word
    kill -KILL $pids 2>/dev/null || true
    ((SECONDS < deadline)) || { printf 'multihost: processes left in %s: %s\n' "$ns" "$pids" >&2; return 1; }
    sleep 0.05
  done
}

# _mh_remove_run PID: removes everything of run PID (namespaces and their processes, links,
# cgroups, its Slurm controller and MH_DIR folders). Used for this run and for dead runs.
_mh_remove_run() {
  local owner=$1 ns link dir pid cg
  for dir in "$MH_BASE/$MH_PREFIX$owner".*; do
    [ -d "$dir" ] || continue
    # The slurmctld of that run lives in the root namespace; the slurmds die with their namespaces.
    pid=$(cat "$dir/slurm/slurmctld.pid" 2>/dev/null) &&
      grep -qF slurmctld "/proc/$pid/cmdline" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    case $ns in "$MH_PREFIX${owner}h"[0-9]*) _mh_kill_netns "$ns" ;; esac
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    case $ns in "$MH_PREFIX${owner}h"[0-9]*) ip netns del "$ns" 2>/dev/null || true ;; esac
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//'); do
    case $link in "$MH_PREFIX${owner}h"[0-9]*o | "$MH_PREFIX${owner}br") ip link del "$link" 2>/dev/null || true ;; esac
  done
  cg=$MH_CGROUP_ROOT/$MH_PREFIX$owner
  if [ -d "$cg" ]; then
    local sub deadline=$((SECONDS + 5))
    for sub in "$cg"/h[0-9]*; do
      [ -d "$sub" ] || continue
      # Processes that were moved in but are in no namespace (should not happen): kill them too.
      xargs -r kill -KILL <"$sub/cgroup.procs" 2>/dev/null || true
      until rmdir "$sub" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "multihost: cannot remove cgroup $sub" >&2; break; }
        sleep 0.05
      done
    done
    rmdir "$cg" 2>/dev/null || true
  fi
  for dir in "$MH_BASE/$MH_PREFIX$owner".*; do
    [ -d "$dir" ] && rm -rf --one-file-system "$dir"
  done
  return 0
}

# _mh_sweep: removes the leftovers of runs whose owner pid is dead (a test killed half way).
_mh_sweep() {
  local name owner owners=""
  for name in $(ip netns list 2>/dev/null | awk '{print $1}') \
    $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//') \
    $(cd "$MH_CGROUP_ROOT" 2>/dev/null && echo "$MH_PREFIX"*) \
    $(cd "$MH_BASE" 2>/dev/null && echo "$MH_PREFIX"*); do
    [[ $name =~ ^$MH_PREFIX([0-9]+)(h[0-9]+o?|br|\..*)?$ ]] || continue
    owner=${BASH_REMATCH[1]}
    case " $owners " in *" $owner "*) continue ;; esac
    owners+=" $owner"
    [ "$owner" != "${MH_OWNER:-$$}" ] && _mh_owner_dead "$owner" && _mh_remove_run "$owner"
  done
  return 0
}

# mh_ns HOST: prints HOST's network namespace name (e.g. tgmh1234h2).
mh_ns() { printf '%s%s\n' "$MH_ID" "$1"; }

# mh_addr HOST: prints HOST's address (no prefix length), e.g. 10.231.17.2; "br" gives the bridge's.
mh_addr() {
  case $1 in
    br) printf '%s.254\n' "$MH_NET" ;;
    h[1-9]) printf '%s.%s\n' "$MH_NET" "${1#h}" ;;
    *) return 1 ;;
  esac
}

# _mh_check_host HOST: fails (status 2, a message) unless HOST is one of h1..hN of this run.
_mh_check_host() {
  [ -n "${MH_N:-}" ] || { echo "multihost: no hosts (mh_setup was not called)" >&2; return 2; }
  case $1 in
    h[1-9]) [ "${1#h}" -le "$MH_N" ] && return 0 ;;
  esac
  echo "multihost: no host '$1' (hosts are h1..h$MH_N)" >&2
  return 2
}

# _mh_write_scripts: writes $MH_DIR/enter (run a command inside a host) and $MH_DIR/rsh (the
# rsh agent for mpirun), with this run's names baked in.
_mh_write_scripts() {
  local cg=""
  [ -d "$MH_CGROUP_ROOT/$MH_ID" ] && cg=$MH_CGROUP_ROOT/$MH_ID
  cat >"$MH_DIR/enter" <<EOF
#!/bin/sh
# enter HOST CMD...: runs CMD (an argument vector, no shell) inside HOST of the simulated-hosts run
# in $MH_DIR: its network namespace, its host name, its /tmp and /etc/hosts, its cgroup.
# Written by tests/multihost/hosts.sh. Exit 125 when HOST cannot be entered.
host=\$1
shift
case \$host in
  h[1-9]) [ "\${host#h}" -le $MH_N ] || { echo "enter: no host '\$host'" >&2; exit 125; } ;;
  *) echo "enter: no host '\$host'" >&2; exit 125 ;;
esac
cg='$cg'
if [ -n "\$cg" ]; then echo \$\$ >"\$cg/\$host/cgroup.procs" || exit 125; fi
exec nsenter --net="/run/netns/$MH_ID\$host" -- \\
  unshare --uts --mount --propagation private -- \\
  sh -c 'hostname "\$1" && mount --bind "\$2" /tmp && mount --bind "\$3" /etc/hosts || exit 125
shift 3
# A folder under the real /tmp is not seen here (a checkout there, say): MH_DIR instead.
cd "\$PWD" 2>/dev/null || cd "$MH_DIR" || exit 125
exec "\$@"' mh-enter "\$host" "$MH_DIR/tmp-\$host" "$MH_DIR/hosts" "\$@"
EOF
  # OpenMPI 4.1 calls a non-ssh agent as: AGENT HOSTNAME CMD-WORDS... (no options, checked); the
  # words form one shell command line (";", quotes, PATH=...; export PATH), as sshd would run it.
  # As sshd does, the command gets a fresh login-like environment: only HOME, USER, LOGNAME,
  # SHELL, PATH, LD_LIBRARY_PATH and LANG come through; everything else must be sent with -x VAR.
  cat >"$MH_DIR/rsh" <<EOF
#!/bin/sh
# rsh agent for mpirun (--mca plm_rsh_agent $MH_DIR/rsh): AGENT [ssh-like options] HOST COMMAND...
# runs COMMAND (a shell command line) inside HOST with a login-like environment, as ssh would.
# Written by tests/multihost/hosts.sh.
while [ \$# -gt 0 ]; do
  case \$1 in
    --) shift; break ;;
    -l | -p | -o | -i | -F | -E | -b | -c | -e | -m) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ \$# -ge 2 ] || { echo "rsh: usage: rsh [options] HOST COMMAND..." >&2; exit 255; }
host=\$1
shift
exec env -i HOME="\${HOME:-/root}" USER="\${USER:-root}" LOGNAME="\${LOGNAME:-root}" SHELL=/bin/sh \\
  PATH="\$PATH" LD_LIBRARY_PATH="\${LD_LIBRARY_PATH:-}" LANG="\${LANG:-C}" \\
  "$MH_DIR/enter" "\$host" /bin/sh -c "\$*"
EOF
  cat >"$MH_DIR/slow-loop" <<EOF
#!/bin/sh
# slow-loop HOST PERCENT: lets every process of HOST run PERCENT ms of each 100 ms (SIGCONT), and
# stops them (SIGSTOP) for the rest; re-reads the pids each cycle; ends (all continued) on
# SIGTERM or once the host's namespace is gone. Written by tests/multihost/hosts.sh (mh_slow).
ns=$MH_ID\$1
on=\$(printf '0.%03d' "\$2")
off=\$(printf '0.%03d' \$((100 - \$2)))
trap 'kill -CONT \$(ip netns pids "\$ns" 2>/dev/null) 2>/dev/null; exit 0' TERM
while pids=\$(ip netns pids "\$ns" 2>/dev/null); do
  [ -z "\$pids" ] || kill -CONT \$pids 2>/dev/null
  sleep "\$on"
  pids=\$(ip netns pids "\$ns" 2>/dev/null) || break
  [ -z "\$pids" ] || kill -STOP \$pids 2>/dev/null
  sleep "\$off"
done
EOF
  chmod 755 "$MH_DIR/enter" "$MH_DIR/rsh" "$MH_DIR/slow-loop"
}

# _mh_chain_exit_trap: puts mh_teardown in front of the EXIT trap set now (if any).
_mh_chain_exit_trap() {
  local prev cmd="" parts=()
  prev=$(trap -p EXIT)
  if [ -n "$prev" ]; then
    eval "parts=($prev)" # trap -- 'CMD' EXIT
    cmd=${parts[2]}
  fi
  case $cmd in *mh_teardown*) return 0 ;; esac
  # shellcheck disable=SC2064 # expanded now on purpose: the previous handler's text
  trap "mh_teardown${cmd:+; $cmd}" EXIT
}

# mh_setup N: makes hosts h1..hN (N = 2, 3 or 4) and exports MH_DIR, MH_SUBNET, MH_N (see the header);
# fails (exit 1) when any step fails. Takes ~0.3 s.
mh_setup() {
  local n=${1:?usage: mh_setup N}
  case $n in 2 | 3 | 4) ;; *) mh_fail "mh_setup: N must be 2, 3 or 4, not '$n'" ;; esac
  [ -z "${MH_N:-}" ] || mh_fail "mh_setup: hosts already set up ($MH_DIR)"
  MH_OWNER=$$ # not exported: only this shell tears the run down
  MH_ID=$MH_PREFIX$MH_OWNER
  _mh_sweep
  _mh_remove_run "$MH_OWNER" # a previous run with our pid (pid reuse) or a half-done setup
  mkdir -p "$MH_BASE"
  MH_DIR=$(mktemp -d "$MH_BASE/$MH_ID.XXXXXX") || mh_fail "mh_setup: mktemp -d under $MH_BASE failed"
  export MH_DIR MH_N=$n MH_ID
  _mh_chain_exit_trap

  # A subnet 10.231.X.0/24 that no address here is in; the lock keeps concurrent setups apart
  # until the bridge holds the address.
  local lock=/run/$MH_PREFIX.lock x="" i br=${MH_ID}br
  exec {MH_LOCK_FD}>"$lock" || mh_fail "mh_setup: cannot open $lock"
  flock -w 30 "$MH_LOCK_FD" || mh_fail "mh_setup: lock $lock not obtained within 30 s"
  local used
  used=$(ip -4 -o addr show | awk '{print $4}')
  for ((i = 0; i < 250; i++)); do
    x=$(((MH_OWNER + i) % 250 + 1))
    grep -q "^10\.231\.$x\." <<<"$used" || break
    x=""
  done
  [ -n "$x" ] || { flock -u "$MH_LOCK_FD"; mh_fail "mh_setup: no free 10.231.X.0/24 subnet"; }
  MH_NET=10.231.$x
  export MH_NET MH_SUBNET=$MH_NET.0/24
  local hex
  hex=$(printf '%02x' "$x")
  if ! { ip link add "$br" address "02:6d:68:$hex:00:fe" type bridge &&
    ip link set "$br" type bridge stp_state 0 forward_delay 0 &&
    ip addr add "$MH_NET.254/24" dev "$br" && ip link set "$br" up; }; then
    flock -u "$MH_LOCK_FD"
    mh_fail "mh_setup: bridge $br not made"
  fi
  flock -u "$MH_LOCK_FD"
  exec {MH_LOCK_FD}>&-

  if [ -d "$MH_CGROUP_ROOT" ] && mkdir "$MH_CGROUP_ROOT/$MH_ID" 2>/dev/null; then
    for ((i = 1; i <= n; i++)); do
      mkdir "$MH_CGROUP_ROOT/$MH_ID/h$i" || mh_fail "mh_setup: cgroup h$i not made"
    done
  fi

  local ns outer hosts_file=$MH_DIR/hosts j
  {
    printf '127.0.0.1\tlocalhost\n'
    for ((i = 1; i <= n; i++)); do printf '%s.%s\th%s\n' "$MH_NET" "$i" "$i"; done
  } >"$hosts_file"
  for ((i = 1; i <= n; i++)); do
    ns=$(mh_ns "h$i")
    outer=$ns"o"
    mkdir -m 1777 "$MH_DIR/tmp-h$i"
    ip netns add "$ns" || mh_fail "mh_setup: ip netns add $ns failed"
    ip link add "$outer" type veth peer name eth0 address "02:6d:68:$hex:00:0$i" netns "$ns" ||
      mh_fail "mh_setup: veth pair $outer/eth0 for h$i not made"
    ip link set "$outer" master "$br" up || mh_fail "mh_setup: $outer not joined to $br"
    { ip -n "$ns" addr add "$MH_NET.$i/24" dev eth0 && ip -n "$ns" link set eth0 up &&
      ip -n "$ns" link set lo up; } || mh_fail "mh_setup: addresses of h$i not set"
    ip -n "$ns" neigh replace "$MH_NET.254" lladdr "02:6d:68:$hex:00:fe" dev eth0 nud permanent
    for ((j = 1; j <= n; j++)); do
      ((j == i)) || ip -n "$ns" neigh replace "$MH_NET.$j" lladdr "02:6d:68:$hex:00:0$j" dev eth0 nud permanent
    done
    ip neigh replace "$MH_NET.$i" lladdr "02:6d:68:$hex:00:0$i" dev "$br" nud permanent
  done
  _mh_write_scripts
  # Every host answers before we return (the bridge ports forward at once with STP off).
  local deadline=$((SECONDS + 10))
  for ((i = 1; i <= n; i++)); do
    until [ "$(ip -n "$(mh_ns "h$i")" -br link show eth0 | awk '{print $2}')" = UP ]; do
      ((SECONDS < deadline)) || mh_fail "mh_setup: eth0 of h$i was not UP within 10 s"
      sleep 0.05
    done
  done
  mh_say "hosts h1..h$n up: $MH_SUBNET, bridge $br ($MH_NET.254), folder $MH_DIR"
}

# mh_run HOST CMD...: runs CMD (an argument vector) inside HOST (its network namespace, host name,
# /tmp, /etc/hosts and cgroup) in the foreground, with the caller's environment; returns CMD's
# status (125: HOST not entered).
mh_run() {
  local host=${1:?usage: mh_run HOST CMD...}
  shift
  _mh_check_host "$host" || return 2
  "$MH_DIR/enter" "$host" "$@"
}

# mh_mpirun_args [SLOTS]: prints, one per line (for mapfile -t), the mpirun options that span the
# hosts with SLOTS (default 1) slots each, for `mh_run h1 mpirun ...` (mpirun on the first host).
# Remote ranks get a login-like environment (see the rsh agent): pass variables with -x VAR.
mh_mpirun_args() {
  local slots=${1:-1} hosts="" i
  for ((i = 1; i <= MH_N; i++)); do hosts+="${hosts:+,}h$i:$slots"; done
  printf '%s\n' --host "$hosts" \
    --mca plm_rsh_agent "$MH_DIR/rsh" \
    --mca plm_rsh_no_tree_spawn 1 \
    --mca btl self,vader,tcp \
    --mca btl_tcp_if_include "$MH_SUBNET" \
    --mca oob_tcp_if_include "$MH_SUBNET" \
    --allow-run-as-root --oversubscribe --bind-to none
}

# mh_pids HOST: prints the pids of the processes in HOST (one a line; none: nothing).
mh_pids() {
  _mh_check_host "$1" || return 2
  ip netns pids "$(mh_ns "$1")"
}

# mh_cut HOST: drops every packet to and from HOST without a reset (its bridge port goes down, as
# a dead switch port): connections to it hang, connects time out. Undo with mh_heal.
mh_cut() {
  _mh_check_host "$1" || return 2
  ip link set "$(mh_ns "$1")o" down || mh_fail "mh_cut: bridge port of $1 not set down"
}

# mh_heal HOST: undoes mh_cut (the bridge port up again; forwards at once, STP is off).
mh_heal() {
  _mh_check_host "$1" || return 2
  ip link set "$(mh_ns "$1")o" up || mh_fail "mh_heal: bridge port of $1 not set up"
}

# mh_kill HOST: SIGKILLs every process in HOST (fails when some are still there after 5 s). The
# kernel then closes their sockets, so peers see FIN/RST at once: a crashed program on a live
# host. For a host that vanishes silently, mh_cut it first. The host can run programs again.
mh_kill() {
  _mh_check_host "$1" || return 2
  _mh_kill_netns "$(mh_ns "$1")" || mh_fail "mh_kill: processes of $1 survived SIGKILL for 5 s"
}

# mh_slow HOST PERCENT: throttles HOST to PERCENT (1-100) of one CPU, shared by all its processes,
# including those started later. With cgroup v1's cpu controller (this machine's case): the
# host's cgroup gets cfs_quota_us = PERCENT% of cfs_period_us (100 ms) and any process in the host
# not yet in it is moved in. Without it: a background loop stops and continues (SIGSTOP/SIGCONT)
# every process of the host in a 100 ms duty cycle, PERCENT% running, re-reading the pids each
# cycle (each process then gets PERCENT% of what it would get). MH_SLOW_METHOD=signals forces that.
mh_slow() {
  local host=$1 percent=${2:?usage: mh_slow HOST PERCENT}
  _mh_check_host "$host" || return 2
  { [[ $percent =~ ^[0-9]+$ ]] && ((percent >= 1 && percent <= 100)); } ||
    mh_fail "mh_slow: PERCENT must be 1..100, not '$percent'"
  mh_unslow "$host"
  local cg=$MH_CGROUP_ROOT/$MH_ID/$host pid
  if [ "${MH_SLOW_METHOD:-cgroup}" != signals ] && [ -d "$cg" ]; then
    for pid in $(mh_pids "$host"); do echo "$pid" >"$cg/cgroup.procs" 2>/dev/null || true; done
    { echo 100000 >"$cg/cpu.cfs_period_us" && echo $((percent * 1000)) >"$cg/cpu.cfs_quota_us"; } ||
      mh_fail "mh_slow: cpu quota of $host not set"
    return 0
  fi
  "$MH_DIR/slow-loop" "$host" "$percent" </dev/null >/dev/null 2>&1 &
  echo $! >"$MH_DIR/slow-$host.pid"
  disown 2>/dev/null || true
}

# mh_unslow HOST: ends mh_slow on HOST (quota back to unlimited, or the duty-cycle loop stopped
# and every process continued). Safe when HOST is not slowed.
mh_unslow() {
  _mh_check_host "$1" || return 2
  local cg=$MH_CGROUP_ROOT/$MH_ID/$1 pid deadline=$((SECONDS + 5))
  [ -f "$cg/cpu.cfs_quota_us" ] && echo -1 >"$cg/cpu.cfs_quota_us"
  if pid=$(cat "$MH_DIR/slow-$1.pid" 2>/dev/null); then
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do
      ((SECONDS < deadline)) || { kill -KILL "$pid" 2>/dev/null; break; }
      sleep 0.05
    done
    rm -f "$MH_DIR/slow-$1.pid"
  fi
  for pid in $(mh_pids "$1"); do kill -CONT "$pid" 2>/dev/null || true; done
  return 0
}

# mh_teardown: stops Slurm (if started), kills every process in the hosts, removes the namespaces,
# veths, bridge, cgroups and MH_DIR of this run, and the leftovers of dead runs. Safe to call twice
# and before mh_setup.
mh_teardown() {
  [ -n "${MH_OWNER:-}" ] || { _mh_sweep; return 0; }
  [ -n "${MH_DIR:-}" ] && [ -d "$MH_DIR/slurm" ] && mh_slurm_stop
  _mh_remove_run "$MH_OWNER"
  _mh_sweep
  unset MH_N MH_DIR
  return 0
}

# _mh_free_port: prints a TCP port that nothing in the root namespace listens on right now.
_mh_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'
}

# mh_slurm_start: a Slurm cluster over the hosts: slurmctld in the root namespace on the bridge
# address, one slurmd per host (NodeName=hK, its address), one partition "test" of all hosts,
# state under $MH_DIR/slurm; exports SLURM_CONF and returns once every node is idle (fails after
# 30 s). Run srun/sbatch from anywhere (SLURM_CONF is under MH_DIR, seen by the hosts too);
# steps started by sbatch run on the hosts. mh_teardown calls mh_slurm_stop.
mh_slurm_start() {
  [ -n "${MH_N:-}" ] || mh_fail "mh_slurm_start: call mh_setup first"
  local tool
  for tool in slurmctld slurmd sbatch srun scontrol scancel sinfo squeue; do
    command -v "$tool" >/dev/null || mh_fail "mh_slurm_start: $tool is not installed"
  done
  local dir=$MH_DIR/slurm cpus ctld_port slurmd_port me
  mkdir -p "$dir/state" "$dir/spool"
  me=$(hostname)
  cpus=$(getconf _NPROCESSORS_ONLN) # not nproc: it follows OMP_NUM_THREADS, which ctest sets
  ctld_port=$(_mh_free_port)
  slurmd_port=$(_mh_free_port)
  while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(_mh_free_port); done
  # SlurmdTimeout 30 / MessageTimeout 5 / TCPTimeout 2: a cut node is declared DOWN within ~40 s.
  {
    cat <<EOF
ClusterName=tgmh
SlurmctldHost=$me($(mh_addr br))
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmdSpoolDir=$dir/spool/%n
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmdLogFile=$dir/slurmd-%n.log
SlurmdTimeout=30
MessageTimeout=5
TCPTimeout=2
EOF
    slurm_common_conf "$dir"
    local i
    for ((i = 1; i <= MH_N; i++)); do
      printf 'NodeName=h%s NodeAddr=%s CPUs=%s State=UNKNOWN\n' "$i" "$(mh_addr "h$i")" "$cpus"
    done
    printf 'PartitionName=test Nodes=h[1-%s] Default=YES MaxTime=INFINITE State=UP\n' "$MH_N"
  } >"$dir/slurm.conf"
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -f "$SLURM_CONF" || mh_fail "mh_slurm_start: slurmctld did not start"
  local i
  for ((i = 1; i <= MH_N; i++)); do
    mkdir -p "$dir/spool/h$i"
    mh_run "h$i" slurmd -f "$SLURM_CONF" -N "h$i" || mh_fail "mh_slurm_start: slurmd of h$i did not start"
  done
  local deadline=$((SECONDS + 30)) states=""
  while ((SECONDS < deadline)); do
    states=$(sinfo -h -N -o '%N=%T' 2>/dev/null | sort -u | tr '\n' ' ')
    [ "$(grep -o '=idle' <<<"$states" | wc -l)" -eq "$MH_N" ] &&
      { mh_say "slurm is up: $states($SLURM_CONF)"; return 0; }
    sleep 0.2
  done
  mh_fail "mh_slurm_start: the $MH_N nodes were not all idle within 30 s (last: ${states:-no answer})"
}

# mh_slurm_stop: cancels every job (waits at most 15 s for them), stops the slurmds and slurmctld
# by their pid files (SIGTERM, SIGKILL after 5 s). Safe to call twice and without mh_slurm_start.
mh_slurm_stop() {
  local dir=${MH_DIR:-}/slurm
  [ -n "${MH_DIR:-}" ] && [ -f "$dir/slurm.conf" ] || return 0
  if [ -f "$dir/slurmctld.pid" ]; then
    SLURM_CONF=$dir/slurm.conf scancel --quiet --partition=test 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)) &&
      [ -n "$(SLURM_CONF=$dir/slurm.conf squeue -h -t running,completing -o %i 2>/dev/null)" ]; do
      sleep 0.2
    done
  fi
  local file pid pids=()
  for file in "$dir"/slurmd-h*.pid "$dir/slurmctld.pid"; do
    pid=$(cat "$file" 2>/dev/null) || continue
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  local deadline=$((SECONDS + 5))
  for pid in "${pids[@]}"; do
    while ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$dir"/slurmd-h*.pid "$dir/slurmctld.pid"
}
