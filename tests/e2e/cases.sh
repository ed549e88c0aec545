#!/usr/bin/env bash
# End-to-end cases of the trainguard executable under mpirun; ctest runs one case per test:
#   cases.sh CASE     (TG_TEST_BIN: path of trainguard; set by ctest)
# Each case checks exit codes and the words of the messages a user would read.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

# A rank that dies outside a step (validate, predict, evaluation), where no --inject-fault can
# reach: a FIFO named like a JPEG holds the rank that reads it (its open and read block) until
# the test SIGKILLs that rank.
# fifo_images DIR JPEG: adds a copy of JPEG as DIR/0_-.jpg and a FIFO as DIR/0_.jpg, the first two
# names in sorted order: with 2 ranks the FIFO is the first image of rank 1's share.
fifo_images() { cp "$2" "$1/0_-.jpg" && mkfifo "$1/0_.jpg" || fail "cannot make a FIFO in $1"; }
# kill_fifo_reader NAME FIFO: waits (90 s at most) for a rank to open FIFO, SIGKILLs it, and
# writes its rank to $WORK/NAME.victim and the time of the kill to $WORK/NAME.killed.
kill_fifo_reader() {
  local fifo=$2 writer pid= fd p
  sleep 200 >"$fifo" &   # the write end, opened once a reader comes and held: the reader blocks in read
  writer=$!
  for _ in $(seq 900); do
    for fd in /proc/[0-9]*/fd/*; do
      [ "$(readlink "$fd" 2>/dev/null)" = "$fifo" ] || continue
      p=${fd#/proc/}; p=${p%%/*}
      grep -qz '^OMPI_COMM_WORLD_RANK=' "/proc/$p/environ" 2>/dev/null && { pid=$p; break 2; }
    done
    sleep 0.1
  done
  [ -n "$pid" ] && tr '\0' '\n' <"/proc/$pid/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p' >"$WORK/$1.victim"
  [ -n "$pid" ] && kill -KILL "$pid"
  date +%s >"$WORK/$1.killed"
  kill "$writer" 2>/dev/null
  [ -n "$pid" ]
}
# expect_peer_killed NAME: the job of NAME ended within 30 s of the kill of its victim rank; mpirun
# said which rank died and exited 137 (128 + SIGKILL: the status of the rank that died first);
# the survivor said why it stopped and exited 6.
expect_peer_killed() {
  local victim elapsed
  victim=$(cat "$WORK/$1.victim")
  elapsed=$(( $(date +%s) - $(cat "$WORK/$1.killed") ))
  [ "$elapsed" -le 30 ] || fail "$1: the job ended ${elapsed}s after rank $victim was killed"
  expect_rc "$1" 137
  expect_text "$1" err "mpirun noticed that process rank $victim with PID"
  expect_text "$1" err "exited on signal 9 (Killed)"
  expect_text "$1" err "[rank $((1 - victim))] stopped by SIGTERM: the launcher ends the job, usually because another rank died"
  expect_text "$1" err "exiting with code 6"
}

case ${1:?case} in
  fashion_mnist_2ranks)
    run fm 2 train --train-samples 4000 --test-samples 1000 --width 0.25 --epochs 1 --threads 1 \
      --run-config "$WORK/run.toml"
    expect_rc fm 0
    expect_text fm out "width=0.25"   # rank 0 prints the settings given...
    grep -q "batch-size=64" "$WORK/fm.out" && fail "defaults printed: only the settings given belong on stdout"
    grep -q "^batch-size=64$" "$WORK/run.toml" || fail "--run-config lacks the defaults"   # ...and writes them all
    acc=$(sed -n 's/^test accuracy: //p' "$WORK/fm.out")
    [ -n "$acc" ] || fail "no test accuracy line"
    awk -v a="$acc" 'BEGIN { exit !(a >= 0.6) }' || fail "accuracy $acc below 0.6 after one small epoch"
    [ "$(grep -c '^test accuracy' "$WORK/fm.out")" = 1 ] || fail "only rank 0 prints the result"
    ;;
  usage_error_names_flag)
    run bad 2 train --batch-size zero
    expect_rc bad 2
    expect_text bad err "--batch-size: must be a number > 0, got 'zero'"
    [ "$(grep -c -- '--batch-size' "$WORK/bad.err")" = 1 ] || fail "the error is printed once, by rank 0"
    ;;
  missing_dataset)
    run nodata 3 train --data-dir /nonexistent/fmnist
    expect_rc nodata 3
    expect_text nodata err "/nonexistent/fmnist/train-images-idx3-ubyte.gz"
    expect_text nodata err "--data-dir"
    ;;
  resume_after_stop)
    common=(train --dataset synthetic --synthetic-samples 120 --width 0.25 --batch-size 8 --epochs 2
            --threads 1 --checkpoint "$WORK/ckpt")
    run first 2 "${common[@]}" --max-steps 5
    expect_rc first 0
    [ -f "$WORK/ckpt" ] || fail "no checkpoint written"
    run second 2 "${common[@]}" --resume
    expect_rc second 0
    expect_text second out "steps: 11, epoch 2"   # 8 steps per epoch: 16 in all, 5 done before
    ;;
  resume_on_other_world)
    # A checkpoint written mid-epoch by 3 ranks resumes on 2 and, separately, on 4 from the same
    # sample: the rest of the epoch, K - s*B*3 samples, is split over the new ranks with the
    # per-rank batch kept, so it takes ceil(ceil((K - s*B*3) / M) / B) steps; epoch 2 is a whole
    # one on M ranks. 200 samples, batch 8: 9 steps per epoch on 3 ranks, a stop after 4.
    k=200 b=8 s=4
    common=(train --dataset synthetic --synthetic-samples "$k" --width 0.25 --batch-size "$b" --epochs 2
            --threads 1 --no-eval --log-every 1)
    run three 3 "${common[@]}" --checkpoint "$WORK/ckpt" --max-steps "$s"
    expect_rc three 0
    [ -f "$WORK/ckpt" ] || fail "no checkpoint written"
    left=$((k - s * b * 3))
    for m in 2 4; do
      cp "$WORK/ckpt" "$WORK/ckpt$m"
      run "on$m" $m "${common[@]}" --checkpoint "$WORK/ckpt$m" --resume
      expect_rc "on$m" 0
      expect_text "on$m" err "resuming from checkpoint $WORK/ckpt$m written "
      expect_text "on$m" err "UTC: epoch 1, step $s of the epoch, global step $s, $((s * b * 3)) of $k samples of the epoch done, written by 3 ranks, resumed on $m: the per-rank batch stays $b, the global batch goes from $((b * 3)) to $((b * m))"
      [ "$(grep -c 'resuming from checkpoint' "$WORK/on$m.err")" = 1 ] || fail "on$m: rank 0 alone says it resumes"
      rest=$(( ((left + m - 1) / m + b - 1) / b ))
      whole=$(( ((k + m - 1) / m + b - 1) / b ))
      expect_text "on$m" err "epoch 1/2 step $((s + rest))/$((s + rest)) "
      grep -q "epoch 1/2 step $((s + rest + 1))/" "$WORK/on$m.err" && fail "on$m: more than $rest steps to end epoch 1"
      expect_text "on$m" err "epoch 2/2 step $whole/$whole "
      expect_text "on$m" out "steps: $((rest + whole)), epoch 2"
    done
    ;;
  preempted_by_signal)
    # SIGUSR1 to mpirun, which forwards it to every rank at once (Slurm's --signal and the
    # Kubernetes launcher's wrapper send it): the ranks agree on a step, rank 0 writes one
    # checkpoint, every rank exits 12; the same command line then resumes (--resume auto) and
    # finishes the epoch. 3000 samples, 2 ranks of 16: 94 steps.
    common=(train --dataset synthetic --synthetic-samples 3000 --width 0.25 --batch-size 16 --epochs 1 --threads 1
            --log-every 1 --checkpoint "$WORK/ckpt" --resume auto --metrics-textfile "$WORK" --metrics-job e2e)
    timeout 120 "${MPIRUN[@]}" -np 2 "$BIN" "${common[@]}" >"$WORK/first.out" 2>"$WORK/first.err" &
    job=$!
    for _ in $(seq 600); do grep -q "step 3/94" "$WORK/first.err" && break; sleep 0.1; done
    grep -q "step 3/94" "$WORK/first.err" || fail "the first run did not reach step 3 in 60 s"
    pkill -USR1 -P "$job" mpirun   # $job is timeout's pid; mpirun is its child
    wait "$job"
    echo $? >"$WORK/first.rc"
    expect_rc first 12
    expect_text first err "--resume auto: no checkpoint $WORK/ckpt yet; starting afresh"
    expect_text first err "SIGUSR1: stopping after the next step with a checkpoint"
    [ "$(grep -c 'exiting with code 12' "$WORK/first.err")" = 1 ] || fail "rank 0 says once why the job stopped"
    stopped=$(sed -n 's/.*stopped on request after step \([0-9]*\):.*/\1/p' "$WORK/first.err")
    [ -n "$stopped" ] && [ "$stopped" -lt 94 ] || fail "no stop before the end of the epoch (step '$stopped')"
    grep -q '^trainguard_checkpoints_total{.*rank="0".*} 1$' "$WORK/trainguard_e2e_rank0.prom" || fail "not one checkpoint"
    for r in 0 1; do
      grep -q '^trainguard_preemptions_total{.*} 1$' "$WORK/trainguard_e2e_rank$r.prom" || fail "rank $r: no preemption counted"
      grep -q '^trainguard_failures_total{.*} [1-9]' "$WORK/trainguard_e2e_rank$r.prom" && fail "rank $r: a preemption is no failure"
      grep -q '^trainguard_exit_code{.*} 12$' "$WORK/trainguard_e2e_rank$r.prom" || fail "rank $r: exit code 12 not exported"
    done
    run second 2 "${common[@]}"
    expect_rc second 0
    expect_text second out "steps: $((94 - stopped)), epoch 1"
    ;;
  preempted_by_sigterm)
    # SIGTERM to a rank started without mpirun (as srun starts them: Slurm's time limit,
    # preemption, scancel) is the same stop request; a second SIGTERM ends it at once.
    common=(train --dataset synthetic --synthetic-samples 3000 --width 0.25 --batch-size 16 --epochs 1 --threads 1
            --log-every 1 --checkpoint "$WORK/ckpt" --no-eval)
    timeout 120 "$BIN" "${common[@]}" >"$WORK/term.out" 2>"$WORK/term.err" &
    job=$!
    for _ in $(seq 600); do grep -q "step 3/188" "$WORK/term.err" && break; sleep 0.1; done
    grep -q "step 3/188" "$WORK/term.err" || fail "the run did not reach step 3 in 60 s"
    # To trainguard itself: timeout would pass a SIGTERM on twice (to its child and to its process
    # group), and a second SIGTERM ends a rank at once.
    pkill -TERM -P "$job"
    wait "$job"
    echo $? >"$WORK/term.rc"
    expect_rc term 12
    expect_text term err "SIGTERM: stopping after the next step with a checkpoint"
    expect_text term err "exiting with code 12"
    [ -f "$WORK/ckpt" ] || fail "no checkpoint"
    ;;
  corrupted_checkpoint)
    common=(train --dataset synthetic --synthetic-samples 64 --width 0.25 --batch-size 8 --threads 1
            --checkpoint "$WORK/ckpt")
    run first 2 "${common[@]}" --max-steps 2
    expect_rc first 0
    truncate -s -100 "$WORK/ckpt"
    run trunc 2 "${common[@]}" --resume
    expect_rc trunc 4
    expect_text trunc err "checkpoint $WORK/ckpt is unusable: truncated"
    ;;
  unwritable_checkpoint)
    run nowrite 2 train --dataset synthetic --synthetic-samples 64 --width 0.25 --batch-size 8 --threads 1 \
      --max-steps 2 --checkpoint /nonexistent-dir/ckpt
    expect_rc nowrite 4
    expect_text nowrite err "cannot write /nonexistent-dir/ckpt"
    expect_text nowrite err "rank 0 failed: cannot write /nonexistent-dir/ckpt"   # rank 1 says why it stops
    ;;
  bad_label_one_rank)
    # Sample 0 holds label 11 of 11 classes; only one rank's shard has it.
    run bad 3 train --dataset synthetic --synthetic-samples 90 --synthetic-classes 11 --width 0.25 --threads 1 \
      --plant-label 0=11 --label-report "$WORK/labels.json"
    expect_rc bad 7
    expect_text bad err "sample 0 (synthetic#0) has label '11'"
    expect_text bad out "too_large label '11' at sample 0"
    grep -q "step" "$WORK/bad.err" && fail "a training step ran despite the bad label"
    grep -q '"verdict": "fail"' "$WORK/labels.json" || fail "JSON report missing or not failing"
    [ "$(grep -c 'label validation failed' "$WORK/bad.err")" = 1 ] || fail "rank 0 reports the verdict once"
    ;;
  hw3_case)
    # HW3 on CPU: 11 classes; unlabelled images (empty label) and -1 mixed in are ignored and
    # training runs; a label of 11 stops the job before its first step; with the ignore policy
    # the job trains and the CPU loss (which raises on an out-of-range target) never sees it.
    hw3=(train --dataset synthetic --synthetic-samples 120 --synthetic-classes 11 --width 0.25 --threads 1
         --batch-size 10 --epochs 1 --label-report "")
    run unlabelled 2 "${hw3[@]}" --plant-label 3=,4=,5=-1
    expect_rc unlabelled 0
    expect_text unlabelled out "117 valid, 3 ignored"
    run eleven 2 "${hw3[@]}" --plant-label 3=,7=11
    expect_rc eleven 7
    expect_text eleven err "has label '11'"
    expect_text eleven err "labels must lie in [0, 11)"
    run ignored 2 "${hw3[@]}" --plant-label 3=,7=11 --too-large-labels ignore
    expect_rc ignored 0
    run validate 2 validate --dataset synthetic --synthetic-samples 120 --synthetic-classes 11 --plant-label 7=11 \
      --label-report ""
    expect_rc validate 7
    ;;
  planted_bad_label_no_validation)
    # Validation off, label 11 of 11 classes on one rank: every rank stops within 30 s with the
    # batch-data code, the failing rank's bundle exists and its diagnosis names the sample and the loss.
    for np in 2 3; do
      start=$(date +%s)
      run bad$np "$np" train --dataset synthetic --synthetic-samples 120 --synthetic-classes 11 --width 0.25 \
        --threads 1 --no-validate-labels --plant-label 37=11 --bundle-dir "$WORK/faults$np" --fault-grace 20
      elapsed=$(( $(date +%s) - start ))
      expect_rc bad$np 8
      [ "$elapsed" -le 30 ] || fail "took ${elapsed}s with $np ranks"
      [ "$(grep -c 'exiting with code 8' "$WORK/bad$np.err")" = "$np" ] || fail "not every rank exited with code 8"
      bundle=$(ls -d "$WORK/faults$np"/step*-rank*)
      [ -f "$bundle/meta.json" ] && [ -f "$bundle/tensors.pt" ] || fail "no bundle"
      grep -q "^  libtorch " "$bundle/environment.txt" && grep -q "^GPUs: " "$bundle/environment.txt" ||
        fail "the bundle has no environment block (environment.txt)"
      expect_text bad$np out "bad_label"
      expect_text bad$np out "operation: cross_entropy / nll_loss"
      expect_text bad$np out "sample 37, file synthetic#37, label '11'"
      grep -q '"index": 37' "$bundle/diagnosis.json" || fail "diagnosis.json does not name sample 37"
    done
    # The same report from a separate run of diagnose on the saved bundle.
    cp "$bundle/diagnosis.json" "$WORK/first.json"
    timeout 60 "$BIN" diagnose "$bundle" >"$WORK/again.out" 2>&1 || fail "diagnose by hand failed"
    cmp -s "$WORK/first.json" "$bundle/diagnosis.json" || fail "diagnose by hand gave another report"
    grep -q "sample 37, file synthetic#37, label '11'" "$WORK/again.out" || fail "diagnose by hand: no sample"
    ;;
  planted_nan)
    for np in 2 3; do
      run nan$np "$np" train --dataset synthetic --synthetic-samples 120 --width 0.25 --threads 1 \
        --inject-fault nan:rank=1:step=2 --bundle-dir "$WORK/faults$np" --fault-grace 20
      expect_rc nan$np 10
      [ "$(grep -c 'exiting with code 10' "$WORK/nan$np.err")" = "$np" ] || fail "not every rank exited with code 10"
      expect_text nan$np out "non_finite_input"
      expect_text nan$np out "module: features.0 (Conv2d)"
      [ -d "$WORK/faults$np/step2-rank1" ] || fail "the culprit rank 1 wrote no bundle"
      [ "$(ls "$WORK/faults$np" | wc -l)" = 1 ] || fail "only the culprit writes a bundle"
    done
    # The fused BatchNorm-ReLU-pool block passes the NaN on as the modules do: the loss of the
    # culprit's batch is not finite, and rank 1 is named (not a gradient norm blamed on rank 0).
    run nanfused 2 train --dataset synthetic --synthetic-samples 120 --width 0.25 --threads 1 --fused-blocks on \
      --inject-fault nan:rank=1:step=2 --bundle-dir "$WORK/faults_fused" --fault-grace 20
    expect_rc nanfused 10
    expect_text nanfused out "non_finite_input"
    [ -d "$WORK/faults_fused/step2-rank1" ] || fail "--fused-blocks on: the culprit rank 1 wrote no bundle"
    ;;
  killed_rank)
    for np in 2 3; do
      start=$(date +%s)
      run kill$np "$np" train --dataset synthetic --synthetic-samples 3000 --width 0.25 --threads 1 \
        --inject-fault kill:rank=1:step=5
      elapsed=$(( $(date +%s) - start ))
      # mpirun exits with the status of the rank that failed first: rank 1, killed by SIGKILL,
      # so 128 + 9 = 137; the survivors, stopped by mpirun's SIGTERM, exit 6 (checked below).
      expect_rc kill$np 137
      [ "$elapsed" -le 30 ] || fail "took ${elapsed}s"
      expect_text kill$np err "[rank 0] stopped by SIGTERM"
      expect_text kill$np err "exiting with code 6"
    done
    ;;
  stalled_rank)
    for np in 2 3; do
      last=$((np - 1))
      start=$(date +%s)
      run stall$np "$np" train --dataset synthetic --synthetic-samples 3000 --width 0.25 --threads 1 \
        --inject-fault sleep:rank=$last:step=4:seconds=120 --step-timeout 5 --fault-grace 5
      elapsed=$(( $(date +%s) - start ))
      expect_rc stall$np 11
      [ "$elapsed" -le 40 ] || fail "took ${elapsed}s"
      expect_text stall$np err "stall in step 4: rank(s) $last did not arrive within --step-timeout 5 s"
    done
    # With the default --fault-grace (30 s) the waiting ranks stay in their rendezvous past the
    # watchdog's slack: after their stall verdict they must not also call themselves stuck.
    run stall_grace 3 train --dataset synthetic --synthetic-samples 3000 --width 0.25 --threads 1 \
      --inject-fault sleep:rank=2:step=4:seconds=120 --step-timeout 5
    expect_rc stall_grace 11
    grep -E "rank [01] is stuck" "$WORK/stall_grace.err" && fail "a waiting rank reported a second cause"
    ;;
  threads_follow_cpu_limits)
    # --threads 0 shares the CPUs the process may use, not the host's: under a CPU set of one
    # CPU, and under a cgroup quota of half a CPU, one thread per rank.
    small=(train --dataset synthetic --synthetic-samples 300 --width 0.25 --epochs 1)
    "$BIN" "${small[@]}" >"$WORK/free.out" 2>"$WORK/free.err" || fail "the unlimited run failed"
    expect_text free err "intra-op threads per rank: $(getconf _NPROCESSORS_ONLN) ($(getconf _NPROCESSORS_ONLN) CPUs usable"
    taskset -c 0 "$BIN" "${small[@]}" >"$WORK/set.out" 2>"$WORK/set.err" || fail "the run under taskset failed"
    expect_text set err "intra-op threads per rank: 1 (1 CPUs usable by this process"
    group=/sys/fs/cgroup/cpu/tg_e2e_$$
    if [ "$(id -u)" -eq 0 ] && mkdir "$group" 2>/dev/null; then
      echo 100000 >"$group/cpu.cfs_period_us" && echo 50000 >"$group/cpu.cfs_quota_us"
      sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$group" "$BIN" "${small[@]}" \
        >"$WORK/quota.out" 2>"$WORK/quota.err"
      rc=$?
      rmdir "$group"
      [ "$rc" = 0 ] || fail "the run under a cgroup quota failed"
      expect_text quota err "intra-op threads per rank: 1 (1 CPUs usable by this process"
    else
      echo "the cgroup quota part needs root and cgroup v1's cpu controller: not run"
    fi
    ;;
  stuck_rank_logs_stack)
    # A rank stuck in its computation (an injected sleep inside step 2) is ended by its own
    # watchdog, which logs where the training thread is: its call stack, no debugger needed.
    timeout 60 "$BIN" train --dataset synthetic --synthetic-samples 600 --width 0.25 --threads 1 \
      --inject-fault sleep:rank=0:step=2:seconds=60 --step-timeout 2 --fault-grace 0 >"$WORK/stuck.out" 2>"$WORK/stuck.err"
    echo $? >"$WORK/stuck.rc"
    expect_rc stuck 11
    expect_text stuck err "rank 0 is stuck in the computation of step 2, past --step-timeout 2 s"
    expect_text stuck err "the training thread's call stack:"
    expect_text stuck err "trainguard::FaultInjector::BeforeStep"
    expect_text stuck err "trainguard::Trainer::Run()"
    ;;
  jpeg_folder)
    # A food-11-style folder from Fashion-MNIST, with unlabelled test images mixed into training/.
    "$BIN" make-folder "$WORK/food" --train-samples 400 --test-samples 60 >"$WORK/make.out" 2>&1 || fail "make-folder"
    cp "$WORK/food/test/00000.jpg" "$WORK/food/test/00001.jpg" "$WORK/food/training/"
    folder=(train --dataset folder --data-dir "$WORK/food/training" --eval-dir "$WORK/food/validation"
            --num-classes 11 --image-size 32 --width 0.25 --threads 1 --epochs 1 --label-report "")
    run mixed 2 "${folder[@]}" --checkpoint "$WORK/food.ckpt"
    expect_rc mixed 0
    expect_text mixed out "400 valid, 2 ignored"
    expect_text mixed out "test accuracy"
    expect_text mixed out "loader wait: "
    # HW3's submission CSV for the unlabelled test images, from the checkpoint, on 3 ranks: the
    # model's shape (dataset, width, classes, input size) comes from the checkpoint, nothing else
    # is given; the CSV goes to the default --predictions in the working folder.
    (cd "$WORK" && run predict 3 predict --checkpoint "$WORK/food.ckpt" --data-dir "$WORK/food/test")
    expect_rc predict 0
    expect_text predict err \
      "the model of checkpoint $WORK/food.ckpt: width 0.25, 11 classes, 32x32x3 input (folder), trained in fp32"
    expect_text predict out "predicted 60 images, 60 of them unlabelled"
    mv "$WORK/predictions.csv" "$WORK/pred.csv" || fail "predict wrote no predictions.csv in its working folder"
    per_class_total=$(awk '/^predictions per class:/ { for (i = 4; i <= NF; i++) { split($i, kv, ":"); n += kv[2] } }
                           END { print n + 0 }' "$WORK/predict.out")
    [ "$per_class_total" = 60 ] || fail "predictions per class add up to '$per_class_total', not 60"
    [ "$(head -1 "$WORK/pred.csv")" = "Id,Category" ] || fail "no CSV header"
    [ "$(wc -l <"$WORK/pred.csv")" = 61 ] || fail "expected 60 predictions"
    sed -n 2p "$WORK/pred.csv" | grep -qE '^00000,[0-9]+$' || fail "first row is not 00000,<class>"
    tail -n +2 "$WORK/pred.csv" | cut -d, -f1 | sort -c || fail "rows not sorted by Id"
    # A model flag that agrees with the checkpoint is no error; one that contradicts it is, naming both.
    run predict_same 1 predict --checkpoint "$WORK/food.ckpt" --data-dir "$WORK/food/test" --width 0.25 \
      --num-classes 11 --predictions "$WORK/same.csv"
    expect_rc predict_same 0
    cmp -s "$WORK/pred.csv" "$WORK/same.csv" || fail "the same model gave other predictions on 1 rank than on 3"
    run predict_wide 2 predict --checkpoint "$WORK/food.ckpt" --data-dir "$WORK/food/test" --width 0.5 \
      --predictions "$WORK/wide.csv"
    expect_rc predict_wide 2
    expect_text predict_wide err \
      "--width 0.5 contradicts the checkpoint $WORK/food.ckpt, trained with width 0.25: drop --width"
    [ ! -e "$WORK/wide.csv" ] || fail "a refused predict wrote predictions"
    run predict_nockpt 2 predict --dataset folder --data-dir "$WORK/food/test" --num-classes 11 --image-size 32
    expect_rc predict_nockpt 2
    expect_text predict_nockpt err "predict needs --checkpoint"
    some_jpeg="$WORK/food/validation/$(ls "$WORK/food/validation" | head -1)"
    cp "$some_jpeg" "$WORK/food/training/11_extra.jpg"   # label 11 of 11 classes
    run eleven 2 "${folder[@]}"
    expect_rc eleven 7
    expect_text eleven err "$WORK/food/training/11_extra.jpg) has label '11'"
    rm "$WORK/food/training/11_extra.jpg"
    head -c 300 "$some_jpeg" >"$WORK/food/training/2_broken.jpg"   # truncated
    run broken 2 "${folder[@]}"
    expect_rc broken 3
    expect_text broken err "unreadable image $WORK/food/training/2_broken.jpg"
    run skipped 2 "${folder[@]}" --unreadable skip
    expect_rc skipped 0
    expect_text skipped err "skipped unreadable image $WORK/food/training/2_broken.jpg: "
    expect_text skipped out "skipped 1 unreadable image reads in all"
    ;;
  stall_between_steps)
    # Rank 1 sleeps after the last step of epoch 1; rank 0 waits for it in the evaluation: the
    # wait is bounded by --step-timeout and named.
    start=$(date +%s)
    run evalstall 2 train --train-samples 240 --test-samples 200 --batch-size 60 --width 0.25 --epochs 2 \
      --threads 1 --step-timeout 3 --fault-grace 5 --inject-fault sleep:rank=1:step=2:seconds=60:when=after
    elapsed=$(( $(date +%s) - start ))
    [ "$elapsed" -le 40 ] || fail "took ${elapsed}s"
    expect_rc evalstall 11
    expect_text evalstall err "injected fault: sleeping 60.000000 s after step 2"
    expect_text evalstall err "stall in the evaluation after epoch 1: rank(s) 1 did not arrive within --step-timeout 3 s"
    # A rank that dies between steps, while rank 0 writes the epoch's checkpoint: all gone fast.
    start=$(date +%s)
    run ckptkill 2 train --dataset synthetic --synthetic-samples 240 --batch-size 60 --width 0.25 --epochs 2 \
      --threads 1 --checkpoint "$WORK/ckpt" --inject-fault kill:rank=1:step=2:when=after
    elapsed=$(( $(date +%s) - start ))
    [ "$elapsed" -le 30 ] || fail "a rank killed at the checkpoint: took ${elapsed}s"
    expect_text ckptkill err "injected fault: SIGKILL after step 2"
    expect_text ckptkill err "[rank 0] stopped by SIGTERM"
    expect_text ckptkill err "exiting with code 6"
    ;;
  metrics_outputs)
    # A real Pushgateway on loopback; the textfiles, the file_sd targets and the pushes of a
    # successful run and of a failing one (bad label, validation off: exit 8).
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # (Debian's build persists pushes in /var/lib/prometheus by default: keep them in $WORK.)
    prometheus-pushgateway --web.listen-address=127.0.0.1:$port --persistence.file="$WORK/pgw.data" \
      >"$WORK/pgw.log" 2>&1 &
    pgw=$!
    trap 'kill $pgw 2>/dev/null; rm -rf "$WORK"' EXIT
    scrape() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "$1"; }
    for _ in $(seq 50); do scrape "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break; sleep 0.1; done
    common=(train --dataset synthetic --synthetic-samples 240 --synthetic-classes 11 --width 0.25 --threads 1
            --epochs 1 --checkpoint "$WORK/ckpt" --metrics-port 0 --metrics-bind 127.0.0.1 --metrics-targets "$WORK/targets.json"
            --pushgateway "http://127.0.0.1:$port" --metrics-textfile "$WORK" --metrics-job e2e)
    run good 2 "${common[@]}"
    expect_rc good 0
    for r in 0 1; do
      grep -q "^trainguard_steps_total{.*rank=\"$r\".*} 2" "$WORK/trainguard_e2e_rank$r.prom" ||
        { cat "$WORK/trainguard_e2e_rank$r.prom" >&2; fail "rank $r textfile: no 2 steps"; }
    done
    for series in 'trainguard_train_accuracy{' 'trainguard_checkpoints_total{.*} 1$' 'trainguard_checkpoint_bytes{'; do
      grep -q "^$series" "$WORK/trainguard_e2e_rank0.prom" || fail "rank 0 textfile: no $series"
    done
    promtool check metrics <"$WORK/trainguard_e2e_rank0.prom" || fail "promtool rejects the textfile"
    [ "$(grep -o '"127.0.0.1:[0-9]*"' "$WORK/targets.json" | sort -u | wc -l)" = 2 ] || fail "targets file: not 2 endpoints"
    scrape "http://127.0.0.1:$port/metrics" >"$WORK/pushed.txt"
    grep -q 'trainguard_steps_total{.*job="e2e".*rank="1".*} 2' "$WORK/pushed.txt" || fail "rank 1 did not push its steps"
    run bad 2 "${common[@]}" --no-validate-labels --plant-label 37=11 --bundle-dir "$WORK/faults" --fault-grace 20
    expect_rc bad 8
    culprit=$(ls -d "$WORK/faults"/step*-rank* | sed 's/.*-rank//')
    grep -q "trainguard_failures_total{.*kind=\"bad_label\"} 1" "$WORK/trainguard_e2e_rank$culprit.prom" &&
      grep -q "^trainguard_exit_code{.*} 8$" "$WORK/trainguard_e2e_rank$culprit.prom" ||
      { cat "$WORK/trainguard_e2e_rank$culprit.prom" >&2; fail "the failing rank's textfile lacks its failure"; }
    scrape "http://127.0.0.1:$port/metrics" >"$WORK/pushed.txt"
    grep -q "trainguard_failures_total{.*kind=\"peer\".*} 1" "$WORK/pushed.txt" || fail "the other rank did not push 'peer'"
    grep -q "trainguard_failures_total{.*kind=\"bad_label\".*rank=\"$culprit\".*} 1" "$WORK/pushed.txt" ||
      fail "the failing rank did not push its failure"
    # validate writes its label counts and its failure too.
    run val 2 validate --dataset synthetic --synthetic-samples 240 --synthetic-classes 11 --plant-label 37=11 \
      --metrics-textfile "$WORK" --metrics-job val
    expect_rc val 7
    cat "$WORK"/trainguard_val_rank*.prom >"$WORK/val.prom"
    grep -q 'trainguard_labels{.*kind="too_large".*} 1$' "$WORK/val.prom" || fail "validate: no too_large label counted"
    [ "$(grep -c '^trainguard_failures_total{.*kind="bad_label".*} 1$' "$WORK/val.prom")" = 2 ] ||
      { cat "$WORK/val.prom" >&2; fail "validate: not every rank wrote its failure"; }
    ;;
  scraped_and_pushed)
    # A real Prometheus finds a 2-rank job through its --metrics-targets file (file_sd) and scrapes
    # it every second; both ranks wait 8 s after their last step so that the final values are
    # scraped. Then a real Pushgateway after a bad label (exit 7), a NaN (exit 10) and a killed
    # peer (exit 6) holds each rank's last values with the failure's kind and exit code.
    prom_port=$(free_port) pgw_port=$(free_port)
    cat >"$WORK/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: trainguard
    honor_labels: true
    file_sd_configs: [{files: ["$WORK/targets.json"], refresh_interval: 1s}]
YAML
    prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
      --web.listen-address="127.0.0.1:$prom_port" >"$WORK/prometheus.log" 2>&1 &
    prom=$!
    prometheus-pushgateway --web.listen-address=127.0.0.1:$pgw_port --persistence.file="$WORK/pgw.data" \
      >"$WORK/pgw.log" 2>&1 &
    pgw=$!
    trap 'kill $prom $pgw 2>/dev/null; wait $prom $pgw 2>/dev/null; rm -rf "$WORK"' EXIT
    for _ in $(seq 100); do
      fetch "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1 && fetch "http://127.0.0.1:$pgw_port/-/ready" >/dev/null 2>&1 && break
      sleep 0.1
    done
    # 600 samples, 2 ranks of 16: 19 steps; sample 37 carries label 11 of 11 classes, ignored.
    run scraped 2 train --dataset synthetic --synthetic-samples 600 --synthetic-classes 11 --width 0.25 --threads 1 \
      --batch-size 16 --epochs 1 --no-eval --plant-label 37=11 --bad-labels ignore --label-report "$WORK/labels.json" \
      --metrics-port 0 --metrics-bind 127.0.0.1 --metrics-targets "$WORK/targets.json" --metrics-job e2e \
      --inject-fault sleep:rank=0:step=19:seconds=8:when=after,sleep:rank=1:step=19:seconds=8:when=after
    expect_rc scraped 0
    sleep 1   # the last scrape before the ranks left
    steps=$(query 'last_over_time(trainguard_steps_total{job="e2e"}[5m])' | sort)
    [ "$steps" = "$(printf '0 19\n1 19')" ] || { cat "$WORK/prometheus.log" >&2; fail "steps scraped per rank: '$steps'"; }
    for kind in valid too_large; do
      want=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["counts"][sys.argv[2]])' "$WORK/labels.json" "$kind")
      # The counts are the whole training set's, exported once: by rank 0.
      got=$(query "last_over_time(trainguard_labels{job=\"e2e\",kind=\"$kind\"}[5m])" | sort)
      [ "$got" = "0 $want" ] || fail "labels kind $kind: Prometheus has '$got', the report $want"
    done
    finite=$(query 'count(last_over_time(trainguard_loss{job="e2e"}[5m]) < +Inf)' | awk '{print $2}')
    [ "$finite" = 2 ] || fail "a finite loss of both ranks: '$finite'"

    # pushed JOB KIND CODE RANK: the Pushgateway holds RANK's failure of KIND and its exit code.
    pushed() {
      fetch "http://127.0.0.1:$pgw_port/metrics" >"$WORK/pgw.txt"
      grep -q "^trainguard_failures_total{.*job=\"$1\",kind=\"$2\".*rank=\"$4\".*} 1$" "$WORK/pgw.txt" &&
        grep -q "^trainguard_exit_code{.*job=\"$1\".*rank=\"$4\".*} $3$" "$WORK/pgw.txt" ||
        { grep "job=\"$1\"" "$WORK/pgw.txt" | grep 'failures_total\|exit_code' >&2; return 1; }
    }
    common=(train --dataset synthetic --synthetic-samples 600 --synthetic-classes 11 --width 0.25 --threads 1
            --batch-size 16 --epochs 1 --no-eval --fault-grace 15 --pushgateway "http://127.0.0.1:$pgw_port")
    run labels 2 "${common[@]}" --plant-label 37=11 --metrics-job e2e_labels
    expect_rc labels 7
    run nan 2 "${common[@]}" --inject-fault nan:rank=1:step=3 --metrics-job e2e_nan --bundle-dir "$WORK/faults"
    expect_rc nan 10
    run killed 2 "${common[@]}" --inject-fault kill:rank=1:step=3 --metrics-job e2e_killed
    for r in 0 1; do
      pushed e2e_labels bad_label 7 "$r" || fail "rank $r did not push its bad-label failure (exit 7)"
      pushed e2e_nan non_finite 10 "$r" || fail "rank $r did not push its non-finite failure (exit 10)"
    done
    pushed e2e_killed peer 6 0 || { cat "$WORK/killed.err" >&2; fail "the surviving rank did not push 'peer' (exit 6)"; }
    ;;
  failure_scraped_at_15s)
    # As the shipped PodMonitor sets it up: a real Prometheus scrapes the endpoints every 15 s, no
    # Pushgateway. The 2 ranks train about 17 s (each is scraped at least once), then a NaN stops
    # them; each keeps serving until it is scraped again (--metrics-linger, 20 s), so the failure
    # is in Prometheus, and the job ends within that bound.
    prom_port=$(free_port)
    cat >"$WORK/prometheus.yml" <<YAML
global: {scrape_interval: 15s, evaluation_interval: 15s}
scrape_configs:
  - job_name: trainguard
    honor_labels: true
    file_sd_configs: [{files: ["$WORK/targets.json"], refresh_interval: 1s}]
YAML
    prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
      --web.listen-address="127.0.0.1:$prom_port" >"$WORK/prometheus.log" 2>&1 &
    prom=$!
    trap 'kill $prom 2>/dev/null; wait $prom 2>/dev/null; rm -rf "$WORK"' EXIT
    for _ in $(seq 100); do fetch "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1 && break; sleep 0.1; done
    start=$(date +%s)
    run nan 2 train --dataset synthetic --synthetic-samples 600 --width 0.25 --threads 1 --batch-size 16 --epochs 1 \
      --no-eval --metrics-port 0 --metrics-bind 127.0.0.1 --metrics-targets "$WORK/targets.json" --metrics-job e2e \
      --bundle-dir "$WORK/faults" --inject-fault sleep:rank=0:step=2:seconds=17:when=after,nan:rank=1:step=3
    took=$(( $(date +%s) - start ))
    expect_rc nan 10
    [ "$took" -le 45 ] || fail "the job took ${took}s: 17 s of training, then at most 20 s of --metrics-linger"
    got=$(query 'max_over_time(trainguard_failures_total{job="e2e",kind="non_finite"}[5m])' | sort)
    [ "$got" = "$(printf '0 1\n1 1')" ] || { cat "$WORK/nan.err" >&2; fail "the failure of each rank in Prometheus: '$got'"; }
    echo "measured: failure scraped from both ranks at a 15 s interval; the job took ${took}s"
    ;;
  shrink_folder)
    # make-folder's 28x28 JPEGs shrunk to a shorter side of 16, one unreadable file among them,
    # then trained on; a rerun finds everything there; a missing source is named.
    "$BIN" make-folder "$WORK/food" --train-samples 200 --test-samples 4 >"$WORK/make.out" 2>&1 || fail "make-folder"
    echo "not a jpeg" >"$WORK/food/training/3_bad.jpg"
    total=$(find "$WORK/food" -name '*.jpg' | wc -l)
    "$BIN" shrink-folder "$WORK/food" "$WORK/small" --side 16 >"$WORK/shrink.out" 2>&1 || { cat "$WORK/shrink.out"; fail "shrink-folder"; }
    expect_text shrink out "unreadable, copied unchanged: $WORK/food/training/3_bad.jpg: not a JPEG"
    expect_text shrink out "(shorter side 16): $((total - 1)) shrunk, 1 copied unchanged (1 of them unreadable), 0 already there"
    [ "$(find "$WORK/small" -name '*.jpg' | wc -l)" = "$total" ] || fail "shrink-folder did not write every file"
    cmp -s "$WORK/food/training/3_bad.jpg" "$WORK/small/training/3_bad.jpg" || fail "the unreadable file was not copied as it was"
    "$BIN" shrink-folder "$WORK/food" "$WORK/small" --side 16 >"$WORK/again.out" 2>&1 || fail "shrink-folder rerun"
    expect_text again out "0 shrunk, 0 copied unchanged (0 of them unreadable), $total already there"
    run small 1 train --dataset folder --data-dir "$WORK/small/training" --num-classes 11 --image-size 32 \
      --width 0.25 --threads 1 --epochs 1 --max-steps 2 --unreadable skip --label-report ""
    expect_rc small 0
    "$BIN" shrink-folder "$WORK/none" "$WORK/x" >"$WORK/none.out" 2>"$WORK/none.err"
    echo $? >"$WORK/none.rc"
    expect_rc none 3
    expect_text none err "$WORK/none"
    ;;
  dataset_doctor)
    # Three unreadable files and a 1x1 placeholder on different ranks: one run lists them all.
    "$BIN" make-folder "$WORK/food" --train-samples 300 --test-samples 10 >"$WORK/make.out" 2>&1 || fail "make-folder"
    some=$(ls "$WORK/food/training"/*.jpg | head -1)
    head -c 300 "$some" >"$WORK/food/training/1_truncated.jpg"
    : >"$WORK/food/training/2_empty.jpg"
    echo "not a jpeg" >"$WORK/food/training/3_text.jpg"
    # A valid 1x1 grayscale JPEG (written by PIL), as hex.
    tiny=
    tiny+=ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f
    tiny+=141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b08000100010101
    tiny+=1100ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400b51000020103030204030505
    tiny+=04040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a
    tiny+=25262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a8384858687
    tiny+=88898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2
    tiny+=e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f002bffd9
    python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$tiny" \
      >"$WORK/food/training/4_tiny.jpg"
    run doctor 2 validate --dataset folder --data-dir "$WORK/food/training" --num-classes 10 --images \
      --label-report "$WORK/labels.json"
    expect_rc doctor 3
    for f in 1_truncated 2_empty 3_text; do expect_text doctor out "unreadable image $WORK/food/training/$f.jpg"; done
    expect_text doctor out "suspicious image $WORK/food/training/4_tiny.jpg: 1x1"
    expect_text doctor err "3 of 304 images are unreadable"
    run doctor_skip 2 validate --dataset folder --data-dir "$WORK/food/training" --num-classes 10 --images \
      --unreadable skip --label-report "$WORK/labels.json"
    expect_rc doctor_skip 0
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["images"]; assert (d["unreadable"], d["suspicious"]) == (3, 1), d' \
      "$WORK/labels.json" || fail "the label report lacks the image findings"
    ;;
  slow_diagnosis)
    # A diagnosis that would take 100 s, under --fault-grace 12: it is stopped after 7 s, the
    # failing rank still meets the other in time, and both exit with the cause's code.
    start=$(date +%s)
    run slow 2 train --dataset synthetic --synthetic-samples 120 --synthetic-classes 11 --width 0.25 --threads 1 \
      --no-validate-labels --plant-label 37=11 --bundle-dir "$WORK/faults" --fault-grace 12 \
      --inject-fault slow-diagnosis:rank=0:step=1:seconds=100 --inject-fault slow-diagnosis:rank=1:step=1:seconds=100
    elapsed=$(( $(date +%s) - start ))
    expect_rc slow 8
    [ "$elapsed" -le 30 ] || fail "took ${elapsed}s"
    [ "$(grep -c 'exiting with code 8' "$WORK/slow.err")" = 2 ] || fail "not every rank exited with code 8"
    expect_text slow err "injected fault: the diagnosis sleeps"
    expect_text slow err "the diagnosis overran its 7 s (--fault-grace minus 5 s) and was stopped"
    grep -q "did not reach the end within --fault-grace" "$WORK/slow.err" && fail "the failing rank came too late"
    bundle=$(ls -d "$WORK/faults"/step*-rank*)
    timeout 60 "$BIN" diagnose "$bundle" >"$WORK/by_hand.out" 2>&1 || fail "diagnose by hand failed"
    grep -q "sample 37, file synthetic#37, label '11'" "$WORK/by_hand.out" || fail "diagnose by hand: no sample"
    ;;
  out_of_memory)
    # A batch that does not fit: 4096 samples per rank under a 5 GB address-space limit (the
    # model itself fits: measured, a rank fails in its first step from 3.8 GB up to 5.7 GB with
    # half this batch). Every rank exits 13 (out of memory, not 1), the log names the batch size
    # and what to try, no diagnosis runs, and the bundle holds the samples and the memory figures
    # without tensors.
    (
      ulimit -v 5000000
      run oom 2 train --dataset synthetic --synthetic-samples 8192 --batch-size 4096 --width 1 --threads 1 \
        --max-steps 2 --no-eval --bundle-dir "$WORK/faults" --metrics-textfile "$WORK" --metrics-job e2e_oom
    )
    expect_rc oom 13
    [ "$(grep -c 'exiting with code 13' "$WORK/oom.err")" = 2 ] || fail "not every rank exited 13"
    expect_text oom err "out of host memory in step 1 with --batch-size 4096 per rank of 1x32x32 images, --precision fp32"
    expect_text oom err "address-space limit (ulimit -v)): try --batch-size 2048"
    grep -q "diagnosis" "$WORK/oom.err" && fail "a diagnosis ran for an out-of-memory failure"
    bundle=$(find "$WORK/faults" -name meta.json | head -1)
    [ -n "$bundle" ] || fail "no bundle"
    grep -q '"kind": "out_of_memory"' "$bundle" || fail "the bundle does not say out_of_memory"
    grep -q 'address-space limit' "$bundle" || fail "the bundle lacks the memory figures"
    [ -z "$(find "$WORK/faults" -name tensors.pt)" ] || fail "an out-of-memory bundle with tensors"
    for r in 0 1; do
      grep -q '^trainguard_failures_total{.*kind="\(out_of_memory\|peer\)"} 1$' "$WORK/trainguard_e2e_oom_rank$r.prom" &&
        grep -q '^trainguard_exit_code{.*} 13$' "$WORK/trainguard_e2e_oom_rank$r.prom" ||
        fail "rank $r: no out-of-memory failure counted"
    done
    ;;
  signal_during_stop)
    # A SIGTERM that lands while a rank runs its stop protocol (here: while the diagnosis of a
    # planted label sleeps) must neither replace the cause's code (8) with the teardown's (6) nor
    # count a second failure. Three times on one rank started directly, at different moments of
    # the stop, then on both ranks of a 2-rank job under mpirun.
    common=(train --dataset synthetic --synthetic-samples 120 --synthetic-classes 11 --width 0.25 --threads 1
            --no-validate-labels --plant-label "37=11" --bundle-dir "$WORK/faults" --fault-grace 8
            --metrics-textfile "$WORK" --metrics-job e2e_stop)
    for delay in 0 0.5 1.5 mpirun; do
      name=stop_$delay
      rm -f "$WORK"/trainguard_e2e_stop_rank*.prom
      if [ "$delay" = mpirun ]; then
        timeout 120 "${MPIRUN[@]}" -np 2 "$BIN" "${common[@]}" --inject-fault slow-diagnosis:rank=1:step=1:seconds=100 \
          >"$WORK/$name.out" 2>"$WORK/$name.err" &
      else
        timeout 120 "$BIN" "${common[@]}" --inject-fault slow-diagnosis:rank=0:step=1:seconds=100 \
          >"$WORK/$name.out" 2>"$WORK/$name.err" &
      fi
      job=$!
      for _ in $(seq 600); do grep -q "injected fault: the diagnosis sleeps" "$WORK/$name.err" && break; sleep 0.1; done
      grep -q "injected fault: the diagnosis sleeps" "$WORK/$name.err" || fail "$name: no diagnosis in 60 s"
      if [ "$delay" = mpirun ]; then
        launcher=$(pgrep -P "$job" mpirun) || fail "$name: no mpirun"
        ranks=$(pgrep -P "$launcher" trainguard | tr '\n' ' ')
        # shellcheck disable=SC2086 # one pid per word
        kill -TERM $ranks
      else
        sleep "$delay"
        pkill -TERM -P "$job" trainguard  # the rank itself, not timeout (which would pass it on twice)
      fi
      wait "$job"
      echo $? >"$WORK/$name.rc"
      expect_rc "$name" 8
      expect_text "$name" err "SIGTERM during the stop (it cuts the stop short): this rank is already"
      grep -q "exiting with code 6" "$WORK/$name.err" && fail "$name: a rank exited 6"
      for prom in "$WORK"/trainguard_e2e_stop_rank*.prom; do
        [ "$(grep -c '^trainguard_failures_total{.*} [1-9]' "$prom")" = 1 ] &&
          grep -q '^trainguard_failures_total{.*} 1$' "$prom" &&
          grep -q '^trainguard_exit_code{.*} 8$' "$prom" || fail "$name: not one failure, code 8, in $prom"
      done
      # The sample lands on rank 0 of the one-rank job, on rank 1 of the two-rank one.
      culprit=$([ "$delay" = mpirun ] && echo 1 || echo 0)
      grep -q '^trainguard_failures_total{.*kind="bad_label"} 1$' "$WORK/trainguard_e2e_stop_rank$culprit.prom" ||
        fail "$name: the cause was not counted once on rank $culprit"
    done
    ;;
  version_env_completion)
    # What a bug report needs, on a machine without a GPU; and the bash completion script.
    "$BIN" --version >"$WORK/version.out" 2>&1 || fail "--version failed"
    for want in "^trainguard [0-9.]+ \(commit [0-9a-f]" "^  libtorch 2\." "^  CUDA runtime: built" "^  cuDNN " "^  NCCL " \
      "^  MPI: built with Open MPI" "prometheus-cpp [0-9]" "libjpeg-turbo [0-9]"; do
      grep -qE "$want" "$WORK/version.out" || { cat "$WORK/version.out" >&2; fail "--version: no /$want/"; }
    done
    SLURM_JOB_ID=4242 "$BIN" env >"$WORK/env.out" 2>&1 || fail "env failed"
    for want in "^  libtorch " "^host: " "^CPUs: [0-9]+ usable" "^memory: " "^GPUs: none" "^MPI: not started" \
      "SLURM_JOB_ID=4242"; do
      grep -qE "$want" "$WORK/env.out" || { cat "$WORK/env.out" >&2; fail "env: no /$want/"; }
    done
    timeout 60 "${MPIRUN[@]}" -np 2 "$BIN" env >"$WORK/env2.out" 2>&1 || fail "env under mpirun failed"
    grep -q "^MPI: rank 1 of 2, local rank 1 of 2 (started by mpirun)" "$WORK/env2.out" || fail "env: no rank layout"
    "$BIN" completion >"$WORK/completion.sh" || fail "completion failed"
    # shellcheck disable=SC1091,SC2016 # the generated script, and words for the inner shell
    words=$(bash -c 'source "$1"; COMP_WORDS=(trainguard train --bat); COMP_CWORD=2; _trainguard
      echo "${COMPREPLY[*]}"; COMP_WORDS=(trainguard validate --ep); COMP_CWORD=2; _trainguard
      echo "[${COMPREPLY[*]}]"' _ "$WORK/completion.sh")
    [ "$words" = "$(printf -- '--batch-size\n[]')" ] || fail "completion: '$words'"
    ;;
  peer_killed_during_stop)
    # Rank 1's step fails on a planted label; while its diagnosis runs, rank 0 is SIGKILLed, and
    # mpirun tears the job down. Rank 1's failure was counted when it was found, so its textfile
    # keeps the cause (bad_label, 8) whatever the teardown does to it, and nothing counts "peer".
    timeout 120 "${MPIRUN[@]}" -np 2 "$BIN" train --dataset synthetic --synthetic-samples 120 --synthetic-classes 11 \
      --width 0.25 --threads 1 --no-validate-labels --plant-label 37=11 --bundle-dir "$WORK/faults" --fault-grace 20 \
      --metrics-textfile "$WORK" --metrics-job e2e_gone --inject-fault slow-diagnosis:rank=1:step=1:seconds=100 \
      >"$WORK/gone.out" 2>"$WORK/gone.err" &
    job=$!
    for _ in $(seq 600); do grep -q "injected fault: the diagnosis sleeps" "$WORK/gone.err" && break; sleep 0.1; done
    grep -q "injected fault: the diagnosis sleeps" "$WORK/gone.err" || fail "no diagnosis in 60 s"
    launcher=$(pgrep -P "$job" mpirun) || fail "no mpirun"
    victim=$(pgrep -P "$launcher" trainguard | head -1)
    for pid in $(pgrep -P "$launcher" trainguard); do
      if tr '\0' '\n' <"/proc/$pid/environ" | grep -qx OMPI_COMM_WORLD_RANK=0; then victim=$pid; fi
    done
    kill -KILL "$victim"
    start=$SECONDS
    wait "$job"
    echo $? >"$WORK/gone.rc"
    ((SECONDS - start <= 30)) || fail "the job took $((SECONDS - start)) s to end after rank 0 was killed"
    [ "$(rc_of gone)" != 0 ] || fail "the job succeeded"
    grep -q '^trainguard_failures_total{.*rank="1",kind="bad_label"} 1$' "$WORK/trainguard_e2e_gone_rank1.prom" &&
      grep -q '^trainguard_exit_code{.*} 8$' "$WORK/trainguard_e2e_gone_rank1.prom" ||
      fail "rank 1's failure was not kept: $(cat "$WORK/trainguard_e2e_gone_rank1.prom")"
    grep -q 'kind="peer"} [1-9]' "$WORK/trainguard_e2e_gone_rank1.prom" && fail "rank 1 counted a peer failure too"
    ;;
  peer_dies_in_validate)
    # validate --images (the dataset doctor): rank 1 is held reading its first image, rank 0
    # checks its share and waits for rank 1 in the image check; rank 1 is killed there.
    "$BIN" make-folder "$WORK/food" --train-samples 200 --test-samples 4 >"$WORK/make.out" 2>&1 || fail "make-folder"
    fifo_images "$WORK/food/training" "$WORK/food/test/00000.jpg"
    run validate 2 validate --dataset folder --data-dir "$WORK/food/training" --num-classes 10 --images \
      --label-report "" &
    job=$!
    kill_fifo_reader validate "$WORK/food/training/0_.jpg" || { wait $job; fail "no rank opened the FIFO"; }
    wait $job
    expect_peer_killed validate
    grep -q "label validation passed" "$WORK/validate.out" && fail "validate passed without rank 1"
    ;;
  peer_dies_in_predict)
    # predict on 2 ranks: rank 1's loader is held on its first image, rank 0 predicts its share
    # and waits for rank 1's predictions; rank 1 is killed there. No CSV is written.
    "$BIN" make-folder "$WORK/food" --train-samples 100 --test-samples 8 >"$WORK/make.out" 2>&1 || fail "make-folder"
    shape=(--dataset folder --num-classes 10 --image-size 32 --width 0.25 --threads 1)
    run ckpt 1 train "${shape[@]}" --data-dir "$WORK/food/training" --max-steps 1 --no-eval --checkpoint "$WORK/ckpt" \
      --label-report ""
    expect_rc ckpt 0
    fifo_images "$WORK/food/test" "$WORK/food/test/00000.jpg"
    run predict 2 predict "${shape[@]}" --data-dir "$WORK/food/test" --checkpoint "$WORK/ckpt" \
      --predictions "$WORK/pred.csv" &
    job=$!
    kill_fifo_reader predict "$WORK/food/test/0_.jpg" || { wait $job; fail "no rank opened the FIFO"; }
    wait $job
    expect_peer_killed predict
    [ -e "$WORK/pred.csv" ] && fail "predictions written without rank 1's share"
    ;;
  peer_dies_in_evaluation)
    # train 2 epochs with --eval-dir: after epoch 1, rank 1 is held on its first evaluation
    # image, rank 0 scores its share and waits for rank 1's counts; rank 1 is killed there.
    "$BIN" make-folder "$WORK/food" --train-samples 200 --test-samples 4 >"$WORK/make.out" 2>&1 || fail "make-folder"
    fifo_images "$WORK/food/validation" "$WORK/food/test/00000.jpg"
    run evaluation 2 train --dataset folder --data-dir "$WORK/food/training" --eval-dir "$WORK/food/validation" \
      --num-classes 10 --image-size 32 --width 0.25 --threads 1 --epochs 2 --label-report "" &
    job=$!
    kill_fifo_reader evaluation "$WORK/food/validation/0_.jpg" || { wait $job; fail "no rank opened the FIFO"; }
    wait $job
    expect_peer_killed evaluation
    grep -q "test accuracy" "$WORK/evaluation.out" && fail "the evaluation finished without rank 1"
    ;;
  default_flags_silent_rank)
    # Default --step-timeout (300 s) and --fault-grace (60 s): a rank frozen by SIGSTOP is silent
    # on the liveness channel, and the others end the job within 15 s of the stop.
    for np in 2 3; do
      last=$((np - 1))
      timeout 120 "${MPIRUN[@]}" -np "$np" "$BIN" train --dataset synthetic --synthetic-samples 12000 --width 0.25 \
        --threads 1 --epochs 1 --log-every 1 >"$WORK/frozen$np.out" 2>"$WORK/frozen$np.err" &
      job=$!
      for _ in $(seq 600); do grep -q "step 5/" "$WORK/frozen$np.err" && break; sleep 0.1; done
      pid=$(rank_pid "$last") || { kill $job; fail "no process of rank $last"; }
      kill -STOP "$pid"
      stopped=$SECONDS
      # mpirun must not wait on the frozen process for ever: let it go once the others are gone.
      (while kill -0 "$job" 2>/dev/null; do
         sleep 0.5
         [ "$(pgrep -c -x trainguard)" -le 1 ] && { kill -KILL "$pid"; break; }
       done) 2>/dev/null &
      wait $job
      echo $? >"$WORK/frozen$np.rc"
      gone=$((SECONDS - stopped))
      [ "$(rc_of frozen$np)" != 0 ] || fail "$np ranks: the job succeeded with a frozen rank"
      [ "$gone" -le 15 ] || { cat "$WORK/frozen$np.err" >&2; fail "$np ranks: the job ended $gone s after the SIGSTOP"; }
      expect_text frozen$np err "rank(s) $last did not arrive"
      grep -qE "rank $last \(host [^)]*\) silent for [0-9.]+ s" "$WORK/frozen$np.err" ||
        { cat "$WORK/frozen$np.err" >&2; fail "$np ranks: the frozen rank is not named silent"; }
      echo "measured: $np ranks, default flags: the job ended $gone s after SIGSTOP of rank $last"
    done
    ;;
  default_flags_hung_rank)
    # Default flags: a rank hung inside its step while its process lives (its liveness thread
    # beacons on) ends the job within 30 s: the step deadline is learned from the first steps.
    for np in 2 3; do
      last=$((np - 1))
      run hung$np "$np" train --dataset synthetic --synthetic-samples 6000 --width 0.25 --threads 1 --epochs 1 \
        --inject-fault "sleep:rank=$last:step=15:seconds=200" &
      job=$!
      for _ in $(seq 600); do grep -q "injected fault: sleeping" "$WORK/hung$np.err" 2>/dev/null && break; sleep 0.1; done
      hung=$SECONDS
      wait $job
      took=$((SECONDS - hung))
      expect_rc hung$np 11
      [ "$took" -le 30 ] || { cat "$WORK/hung$np.err" >&2; fail "$np ranks: the job ended $took s after the hang"; }
      expect_text hung$np err "(learned: 3x the longest of the last 10 training steps"
      expect_text hung$np err "stall in step 15: rank(s) $last did not arrive within the deadline of"
      expect_text hung$np err "(it answers but did not arrive"
      echo "measured: $np ranks, default flags: the job ended $took s after rank $last hung in step 15"
    done
    ;;
  no_false_stall_steps_and_evaluation)
    # Default flags: no stall verdict where a phase is slow but alive. The first step takes 12 s
    # on rank 0 (longer than a learned step deadline: kernels chosen, caches filled), and rank 1
    # takes 12 s more after the last step of each epoch, so that rank 0 waits for it in the
    # evaluation (not learned after one; a minute at least after two).
    run slowstart 2 train --dataset synthetic --synthetic-samples 1280 --test-samples 200 --batch-size 64 --width 0.25 \
      --threads 1 --epochs 3 --inject-fault sleep:rank=0:step=1:seconds=12 \
      --inject-fault sleep:rank=1:step=10:seconds=12:when=after --inject-fault sleep:rank=1:step=20:seconds=12:when=after \
      --inject-fault sleep:rank=1:step=30:seconds=12:when=after
    expect_rc slowstart 0
    grep -qE "deadline of training steps: 3[6-9] s \(learned: 3x the longest of the last 10 training steps, 1[23] s" \
      "$WORK/slowstart.err" || { cat "$WORK/slowstart.err" >&2; fail "the slow first step is not in the step deadline"; }
    expect_text slowstart err "deadline of evaluations: 60 s (learned"
    ;;
  no_false_stall_checkpoint_and_validation)
    # Default flags: a disk that turns slow (every checkpoint from step 9 on takes 12 s more to
    # write, after two fast ones) and a slow label validation on rank 1 (12 s before each epoch)
    # are waited for; then a preemption's agreed checkpoint on the same slow disk.
    common=(train --dataset synthetic --synthetic-samples 1280 --batch-size 64 --width 0.25 --threads 1 --no-eval
            --checkpoint "$WORK/ckpt" --checkpoint-every 4 --inject-fault slow-checkpoint:rank=0:step=9:seconds=12)
    run slowdisk 2 "${common[@]}" --epochs 2 --inject-fault slow-validation:rank=1:step=1:seconds=12
    expect_rc slowdisk 0
    expect_text slowdisk err "injected fault: the checkpoint after step 20 takes"
    expect_text slowdisk err "injected fault: the label validation before epoch 2 sleeps"
    expect_text slowdisk err "deadline of checkpoints: 60 s (learned"
    expect_text slowdisk err "deadline of label validations: 60 s (learned"
    rm -f "$WORK/ckpt"
    timeout 120 "${MPIRUN[@]}" -np 2 "$BIN" "${common[@]}" --epochs 4 --log-every 1 \
      >"$WORK/preempt.out" 2>"$WORK/preempt.err" &
    job=$!
    for _ in $(seq 900); do grep -q "step 9/" "$WORK/preempt.err" && break; sleep 0.1; done
    pkill -USR1 -P "$job" mpirun
    wait "$job"
    echo $? >"$WORK/preempt.rc"
    expect_rc preempt 12
    expect_text preempt err "stopped on request after step"
    ;;
  *) fail "unknown case $1" ;;
esac
echo "PASS: $1"
