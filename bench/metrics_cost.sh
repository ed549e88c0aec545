#!/usr/bin/env bash
# Metrics cost: the same training with the metrics off and on, interleaved in one run (a warm-up
# run, then off, on, off, on, ... REPS pairs), so that drift and other jobs on the machine fall on
# both sides alike. "On" is every rank serving /metrics on 127.0.0.1 (--metrics-port BASE, BASE
# free, so rank r listens on BASE + r), scraped every second by a real Prometheus (1 s
# scrape_interval, static targets: its scrape loops run all along and find an "on" run's endpoints
# within a second, where file_sd targets were first scraped 5-6 s after a start, too late for runs
# of a few seconds), plus --metrics-textfile and --metrics-targets. Prometheus runs during the
# "off" runs too, so only the trainer's side of the cost differs.
#
# Prints one line per run (mode, img/s from rank 0's `throughput_img_per_s=`, steps), then the
# step-time ratio on/off of each pair (= off img/s / on img/s), its median, min, max and
# quartiles, the same spread for consecutive "off" runs (the noise floor: off against off), the
# number of scrapes Prometheus stored, and the verdict against the target (cost under 1%):
# "inconclusive" when either interquartile range is wider than the target. On a shared machine
# it often is; build/bench/metrics_overhead_bench measures the pieces in CPU time instead.
#
# Settings come from the environment:
#   REPS     (default 8)     off/on pairs, at least 3
#   SAMPLES  (default 3000)  --synthetic-samples (64 per rank per step)
#   WIDTH    (default 0.25)  --width
#   RANKS    (default 2)     mpirun -np
#   BIN      (default build/launcher/trainguard)  the binary to time (not TRAINGUARD_*:
#            trainguard refuses unknown TRAINGUARD_ variables)
#   EXTRA    (default empty) more `train` flags for both sides
#
# Usage: [REPS=N] [SAMPLES=N] [BIN=PATH] bench/metrics_cost.sh
# Needs mpirun, prometheus (Debian package `prometheus`), curl and jq.
set -euo pipefail

REPS="${REPS:-8}"
SAMPLES="${SAMPLES:-3000}"
WIDTH="${WIDTH:-0.25}"
RANKS="${RANKS:-2}"
EXTRA="${EXTRA:-}"
TARGET_PCT=1

if ! [[ "$REPS" =~ ^[0-9]+$ ]] || ((REPS < 3)); then
  echo "metrics_cost.sh: REPS=$REPS: at least 3 pairs are needed for a spread" >&2
  exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN="${BIN:-build/launcher/trainguard}"
if [[ ! -x "$BIN" ]]; then
  echo "metrics_cost.sh: $BIN not found or not executable -- run scripts/setup.sh or set BIN" >&2
  exit 1
fi
for tool in mpirun prometheus curl jq; do
  command -v "$tool" >/dev/null || { echo "metrics_cost.sh: '$tool' not found in PATH" >&2; exit 1; }
done
NPROC="$(nproc)"

WORK="$(mktemp -d /tmp/tg_metrics_cost_XXXXXX)"
PROM_PID=""
cleanup() {
  if [[ -n "$PROM_PID" ]]; then kill "$PROM_PID" 2>/dev/null || true; wait "$PROM_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# A free TCP port on 127.0.0.1 (bound, then released).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A port BASE with BASE .. BASE+RANKS-1 all free on 127.0.0.1 (the ranks' endpoints).
free_port_range() {
  python3 - "$RANKS" <<'PY'
import socket, sys
ranks = int(sys.argv[1])
for _ in range(50):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); base = s.getsockname()[1]; s.close()
    if base + ranks > 65535: continue
    try:
        for p in range(base, base + ranks):
            t = socket.socket(); t.bind(("127.0.0.1", p)); t.close()
    except OSError:
        continue
    print(base); sys.exit(0)
sys.exit("no free port range")
PY
}

# --- the scraper: a real Prometheus on loopback, scraping every rank's port every second ---
METRICS_BASE="$(free_port_range)"
TARGET_LIST="$(for ((r = 0; r < RANKS; r++)); do printf "'127.0.0.1:%d'," $((METRICS_BASE + r)); done)"
mkdir -p "$WORK/textfile"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: trainguard
    honor_labels: true
    static_configs:
      - targets: [${TARGET_LIST%,}]
EOF
PROM_PORT="$(free_port)"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null || {
  echo "metrics_cost.sh: prometheus not ready; its log:" >&2; cat "$WORK/prometheus.log" >&2; exit 1; }

# run MODE: one training; prints its img/s and steps as "IMG_S STEPS".
run() {
  local mode="$1" log="$WORK/run.log"
  local flags=()
  if [[ "$mode" == on ]]; then
    flags=(--metrics-port "$METRICS_BASE" --metrics-bind 127.0.0.1 --metrics-required
           --metrics-targets "$WORK/targets.json" --metrics-textfile "$WORK/textfile")
  fi
  # shellcheck disable=SC2086  # EXTRA is a list of flags
  if ! mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np "$RANKS" \
      "$BIN" train --dataset synthetic --synthetic-samples "$SAMPLES" --width "$WIDTH" --threads 1 \
      --epochs 1 --no-eval "${flags[@]}" $EXTRA >"$log" 2>&1; then
    echo "metrics_cost.sh: the '$mode' run failed; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
  local line
  line="$(grep -o 'steps: [0-9]*, epoch [0-9]*, throughput_img_per_s=[0-9.eE+-]*' "$log" | tail -n 1)"
  if [[ -z "$line" ]]; then
    echo "metrics_cost.sh: no 'throughput_img_per_s=' line in the '$mode' run's output:" >&2
    cat "$log" >&2
    exit 1
  fi
  local steps="${line#steps: }"
  echo "${line##*=} ${steps%%,*}"
}

# stats: reads numbers, one a line; prints "median min max q1 q3" (quartiles by the median of halves).
stats() {
  sort -g | awk '{ v[NR] = $1 }
    function med(lo, hi,   n, m) { n = hi - lo + 1; m = lo + int((n - 1) / 2);
      return (n % 2) ? v[m] : (v[m] + v[m + 1]) / 2 }
    END { if (NR == 0) { print "nan nan nan nan nan"; exit }
      h = int(NR / 2);
      printf "%.4f %.4f %.4f %.4f %.4f\n", med(1, NR), v[1], v[NR],
        (h ? med(1, h) : v[1]), (h ? med(NR - h + 1, NR) : v[NR]) }'
}

echo ">> warm-up run (off, not counted)" >&2
run off >/dev/null

OFF=()
ON=()
STEPS=""
printf '%-4s %-4s %12s %6s\n' "pair" "mode" "img/s" "steps"
for i in $(seq "$REPS"); do
  for mode in off on; do
    run "$mode" >"$WORK/result"  # not in a subshell: a failed run ends the script
    read -r img steps <"$WORK/result"
    STEPS="$steps"
    printf '%-4s %-4s %12.1f %6s\n' "$i" "$mode" "$img" "$steps"
    if [[ "$mode" == off ]]; then OFF+=("$img"); else ON+=("$img"); fi
  done
done

# Scrapes Prometheus stored: one sample of trainguard_steps_total per rank and successful scrape.
sleep 1
SCRAPES="$(curl -fs "http://127.0.0.1:$PROM_PORT/api/v1/query" \
  --data-urlencode 'query=sum(count_over_time(trainguard_steps_total[1d]))' |
  jq -r '.data.result[0].value[1] // "0"')"

PAIR_RATIOS="$(for i in "${!OFF[@]}"; do awk -v a="${OFF[$i]}" -v b="${ON[$i]}" 'BEGIN { printf "%.6f\n", a / b }'; done)"
NOISE_RATIOS="$(for ((i = 0; i + 1 < ${#OFF[@]}; i++)); do
  awk -v a="${OFF[$i]}" -v b="${OFF[$((i + 1))]}" 'BEGIN { printf "%.6f\n", a / b }'; done)"
read -r MED MIN MAX Q1 Q3 <<<"$(stats <<<"$PAIR_RATIOS")"
read -r NMED NMIN NMAX NQ1 NQ3 <<<"$(stats <<<"$NOISE_RATIOS")"
read -r OFF_MED _ <<<"$(printf '%s\n' "${OFF[@]}" | stats)"
read -r ON_MED _ <<<"$(printf '%s\n' "${ON[@]}" | stats)"

echo
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(uname -m), nproc=$NPROC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "settings: pairs=$REPS ranks=$RANKS synthetic-samples=$SAMPLES width=$WIDTH threads/rank=1 steps/run=$STEPS (5 warm-up steps not timed) $EXTRA"
printf 'median img/s: off %.1f, on %.1f\n' "$OFF_MED" "$ON_MED"
printf 'step-time ratio on/off, per pair: median %.4f (min %.4f, q1 %.4f, q3 %.4f, max %.4f)\n' \
  "$MED" "$MIN" "$Q1" "$Q3" "$MAX"
printf 'noise floor, consecutive off runs: median %.4f (min %.4f, q1 %.4f, q3 %.4f, max %.4f)\n' \
  "$NMED" "$NMIN" "$NQ1" "$NQ3" "$NMAX"
echo "scrapes stored by Prometheus (both ranks, all $REPS on-runs): $SCRAPES"
awk -v med="$MED" -v q1="$Q1" -v q3="$Q3" -v nq1="$NQ1" -v nq3="$NQ3" -v target="$TARGET_PCT" 'BEGIN {
  cost = (med - 1) * 100; spread = (q3 - q1) * 100; noise = (nq3 - nq1) * 100;
  printf "metrics cost: %+.2f%% of step time (interquartile range of the pairs %.2f points; off-vs-off %.2f points)\n",
    cost, spread, noise;
  if (spread > target || noise > target) {
    printf "verdict: inconclusive at %g%%: the noise is larger than the target; median cost %+.2f%%\n", target, cost
  } else if (cost < target) {
    printf "verdict: under the %g%% target\n", target
  } else {
    printf "verdict: over the %g%% target\n", target
  }
}'
