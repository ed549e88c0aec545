#!/usr/bin/env bash
# End-to-end cases of the settable ports (--liveness-port; --store-port is tested on the store
# itself in tests/multirank/store_bootstrap_test.cc, as it serves NCCL only); ctest runs one case
# per test:   ports.sh CASE     (TG_TEST_BIN: path of trainguard; set by ctest)
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

# A UDP port free now on every interface.
free_udp_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'
}

case ${1:?case} in
  liveness_port_set)
    # Set through its variable: rank 0's hub is bound to the port while the job runs, by trainguard.
    port=$(free_udp_port)
    TRAINGUARD_LIVENESS_PORT=$port run set 2 train --dataset synthetic --synthetic-samples 3000 --width 0.25 \
      --threads 1 --epochs 1 --no-eval &
    job=$!
    seen=
    for _ in $(seq 600); do
      if ss -Hulnp "sport = :$port" | grep -q '"trainguard"'; then seen=1; break; fi
      kill -0 $job 2>/dev/null || break
      sleep 0.1
    done
    sockets=$(ss -Hulnp "sport = :$port")
    wait $job
    expect_rc set 0
    [ -n "$seen" ] || fail "no trainguard socket on UDP port $port while the job ran: '$sockets'"
    ;;
  liveness_port_taken)
    # Another process holds the port: every rank stops at once, with exit 2 and an error that
    # names the flag, the port and what to do.
    port=$(free_udp_port)
    python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1]))); time.sleep(120)' "$port" &
    holder=$!
    sleep 0.5
    run taken 2 train --dataset synthetic --synthetic-samples 3000 --width 0.25 --threads 1 --liveness-port "$port"
    kill $holder
    expect_rc taken 2
    expect_text taken err "--liveness-port $port: rank 0 cannot bind UDP port $port (Address already in use): another process holds it, or it is privileged; pick a free port (and allow it between the nodes), or 0 for any free port"
    if grep -q "training on" "$WORK/taken.err"; then fail "a rank trained without the liveness hub"; fi
    ;;
  *) fail "no case $1" ;;
esac
