#!/usr/bin/env python3
"""The shipped alerts against the faults they name (ctest -L alerts): each case runs a real
2-rank trainguard job under mpirun with one fault, while a real Prometheus scrapes its endpoints
at the shipped PodMonitor's 15 s (file_sd from --metrics-targets; the Kubernetes setup) and, for
the Slurm setup, also a Pushgateway and node_exporter's textfile collector, and evaluates
k8s/prometheusrule.yaml every 15 s. The case polls Prometheus's active alerts of the job
(pending or firing: the alert's expression holds) and checks that the alert it expects holds,
with the labels it expects, and that no other alert does while the job runs and for a while after.
It prints the time from the fault (the line the job logs for it, or the signal the case sends)
to the first evaluation in which the expression held.

    alert_cases.py CASE        CASE: one of CASES below; $TG_TEST_BIN is the trainguard binary

Prometheus, the Pushgateway and node_exporter are Debian's, started on free loopback ports in a
temporary folder and stopped at the end. Run by tests/k8s/with_tools.sh (pyyaml).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from prometheus_server import Prometheus, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "k8s" / "prometheusrule.yaml"
BIN = os.environ.get("TG_TEST_BIN", "")
INTERVAL_S = 15  # the shipped PodMonitor's scrape interval; rules are evaluated as often
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-x", "OMP_NUM_THREADS=1", "-np", "2"]
# Every case: 2 ranks of a small model on synthetic data, endpoints on loopback for file_sd, a
# checkpoint each epoch. --step-timeout 30 + --fault-grace 20 make a 50 s progress deadline; the
# grace also bounds --metrics-linger (20 s), which must exceed the scrape interval.
COMMON = ["train", "--dataset", "synthetic", "--synthetic-classes", "11", "--width", "0.25", "--threads", "1",
          "--batch-size", "16", "--step-timeout", "30", "--fault-grace", "20", "--metrics-port", "0",
          "--metrics-bind", "127.0.0.1"]
# Rank 0 sleeps 17 s in step 1 (rank 1 waits for it) so that Prometheus scrapes both ranks before
# any fault: a failure before the first scrape reaches Prometheus only through a Pushgateway or
# textfile.
FIRST_SCRAPE = "sleep:rank=0:step=1:seconds=17"
# Both ranks sleep 0.08 s in every step: a run long enough to be scraped a few times, with no
# straggler.
EVEN_SLOW = "slow:rank=0:step=1:seconds=0.08,slow:rank=1:step=1:seconds=0.08"
# About a minute of full-speed steps on a 2-core machine (some 0.025 s each).
SLOWDOWN_STEP = 2400


class CaseFailed(Exception):
    """The case failed; the message says what was expected and what Prometheus held."""


# Each case: the job's flags, its expected exit code, the fault's log line (None: the case sends
# the fault itself, or there is none), the alerts that must hold ({alertname: {label: value}}),
# those that may also hold (and why), and how long to keep watching after the job ends; with
# until_alert, the case ends (and kills the job) once the expected alerts hold, and with
# series_kept it first checks that both ranks' series were still there; limit_s bounds the whole
# case (default 300 s).
FROZEN_JOB = dict(args=["--synthetic-samples", "6000", "--epochs", "20", "--inject-fault", EVEN_SLOW],
                  exit=None, fault=None, freeze=True, until_alert=True, expect={"TrainguardNoProgress": {}},
                  allowed={"TrainguardRanksMissing": "the stopped endpoints fail their scrapes one at a time, so "
                                                     "for a scrape one of the two ranks reports"},
                  after_s=0)
CASES = {
    # A healthy run with evaluations and checkpoints, then its end: no alert, during the run or in
    # the 80 s after it (past the 50 s deadline plus an evaluation: the exit code 0, scraped
    # before the endpoints went, keeps TrainguardNoProgress silent).
    "clean_end": dict(args=["--synthetic-samples", "1200", "--epochs", "6", "--inject-fault", EVEN_SLOW],
                      exit=0, fault=None, expect={}, after_s=80),
    # Planted bad labels under the ignore policy: counted by validation, the run trains on.
    "invalid_labels": dict(args=["--synthetic-samples", "1200", "--epochs", "3", "--plant-label", "5=11,9=-3",
                                 "--bad-labels", "ignore", "--inject-fault", FIRST_SCRAPE],
                           exit=0, fault=None,
                           expect={"TrainguardInvalidLabels": {"kind": "too_large"}}, after_s=20),
    # A label out of range with validation off: the step fails on its data (exit 8).
    "failed_step": dict(args=["--synthetic-samples", "600", "--epochs", "1", "--no-eval", "--no-validate-labels",
                              "--plant-label", "37=11", "--inject-fault", FIRST_SCRAPE],
                        exit=8, fault=r"error: ", expect={"TrainguardRunFailed": {"kind": "bad_label"}},
                        after_s=20),
    # A NaN in rank 1's batch (exit 10).
    "nan": dict(args=["--synthetic-samples", "600", "--epochs", "1", "--no-eval",
                      "--inject-fault", FIRST_SCRAPE + ",nan:rank=1:step=3"],
                exit=10, fault=r"injected fault: NaN", expect={"TrainguardRunFailed": {"kind": "non_finite"}},
                after_s=20),
    # A NaN at rank 1's step 2, before Prometheus has scraped any endpoint, in the Slurm setup:
    # the failure reaches Prometheus through the Pushgateway and the textfile alone.
    "early_failure": dict(args=["--synthetic-samples", "600", "--epochs", "1", "--no-eval",
                                "--inject-fault", "nan:rank=1:step=2"],
                          exit=10, fault=r"injected fault: NaN", slurm=True,
                          expect={"TrainguardRunFailed": {"kind": "non_finite"}}, after_s=20),
    # Rank 1 killed (SIGKILL) at step 3, in the Slurm setup. mpirun tears down rank 0 within a
    # second, which counts "peer", pushes it and writes its textfile before it exits.
    "killed_rank": dict(args=["--synthetic-samples", "600", "--epochs", "1", "--no-eval",
                              "--inject-fault", FIRST_SCRAPE + ",kill:rank=1:step=3"],
                        exit=None, fault=r"injected fault: SIGKILL", slurm=True,
                        expect={"TrainguardRunFailed": {"kind": "peer"}},
                        allowed={"TrainguardRanksMissing": "rank 1's endpoint is gone while rank 0's still answers"},
                        after_s=20),
    # Every rank stopped with SIGSTOP (a frozen job: no watchdog runs): the endpoints stop
    # answering and no rank says how it ended.
    "frozen_job": FROZEN_JOB,
    # The same frozen job in the Slurm setup, stopped after both ranks pushed at an epoch end: the
    # Pushgateway and the textfile keep serving the ranks' last values, so their series never go
    # silent; the alert holds through its other branch, the last progress older than the rank's
    # progress deadline (50 s).
    "frozen_job_slurm": dict(FROZEN_JOB, slurm=True, series_kept=True),
    # Rank 1's endpoint cannot start (its port is taken; a warning, and the run trains on): one
    # of two ranks reports. The rule skips a job's first minute.
    "endpoint_missing": dict(args=["--synthetic-samples", "1200", "--epochs", "40", "--inject-fault", EVEN_SLOW],
                             exit=None, fault=None, block_rank1_port=True, until_alert=True,
                             expect={"TrainguardRanksMissing": {"reporting": "1", "world_size": "2"}}, after_s=0),
    # The whole job slows down: from step SLOWDOWN_STEP (about a minute in) each rank sleeps
    # 0.5 s in every step, some twenty times its step. The 5-minute rate falls below half the
    # run's average a few minutes later; the case ends when the alert's expression holds.
    "throughput_dropped": dict(args=["--synthetic-samples", "6000", "--epochs", "1000", "--no-eval",
                                     "--inject-fault", f"slow:rank=0:step={SLOWDOWN_STEP}:seconds=0.5,"
                                                       f"slow:rank=1:step={SLOWDOWN_STEP}:seconds=0.5"],
                               exit=None, fault=r"injected fault: sleeping .* in every step", until_alert=True,
                               limit_s=720, expect={"TrainguardThroughputDropped": {}}, after_s=0),
    # Rank 1 sleeps 0.15 s inside every step: its own time per step is several times the other
    # rank's (whose wait for it counts as waiting). The ratio comes every window of steps (about
    # 5 s): 8 epochs of about 6 s give Prometheus several scrapes of it.
    "straggler": dict(args=["--synthetic-samples", "1200", "--epochs", "8", "--no-eval",
                            "--inject-fault", "slow:rank=1:step=1:seconds=0.15"],
                      exit=0, fault=r"injected fault: sleeping .* in every step", expect={"TrainguardStraggler": {"rank": "1"}},
                      after_s=20),
}


def held_port_after_free_one():
    """(a listening socket on port P + 1, P) where P is free: for endpoints at P + local rank."""
    for _ in range(50):
        base = free_port()
        held = socket.socket()
        try:
            held.bind(("127.0.0.1", base + 1))
            held.listen()
            return held, base
        except OSError:
            held.close()
    raise CaseFailed("found no two free ports in a row")


def wait_ready(url, what, proc):
    for _ in range(200):
        if proc.poll() is not None:
            raise CaseFailed(f"{what} exited ({proc.returncode}) before it was ready")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise CaseFailed(f"{what} not ready at {url} within 20 s")


def start_prometheus(work, targets, pushgateway, node_exporter):
    """A Prometheus scraping the file_sd targets (and a Pushgateway and node_exporter) every
    INTERVAL_S, with the shipped rules."""
    rules = work / "rules.yml"
    rules.write_text(yaml.safe_dump(yaml.safe_load(RULES.read_text())["spec"]))
    scrape = [{"job_name": "trainguard", "honor_labels": True,
               "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}]}]
    for name, address in (("pushgateway", pushgateway), ("node", node_exporter)):
        if address:
            scrape.append({"job_name": name, "honor_labels": True, "static_configs": [{"targets": [address]}]})
    return Prometheus(work, {"global": {"scrape_interval": f"{INTERVAL_S}s", "evaluation_interval": f"{INTERVAL_S}s"},
                             "rule_files": [str(rules)], "scrape_configs": scrape}, error=CaseFailed)


def trainguard_pids(job):
    """The trainguard processes (ranks) of the job: their executable is BIN and their command line
    names the job."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            same = os.path.samefile(entry / "exe", BIN)
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if same and job.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def logged_at(pattern, log):
    """The wall-clock time of the first log line matching `pattern`, from its "[HH:MM:SS rank R]"
    stamp (local time, whole seconds: up to a second early), or None before there is one. A rank
    that kills itself logs first, but mpirun may forward that line seconds later: the time of the
    stamp, not of the reading, is the fault's."""
    for line in log.splitlines():
        if re.search(pattern, line):
            stamp = re.match(r"\[(\d\d):(\d\d):(\d\d) ", line)
            if not stamp:
                return time.time()
            now = time.localtime()
            at = time.mktime(now[:3] + tuple(int(x) for x in stamp.groups()) + (0, 0, -1))
            return at - 86400 if at > time.time() + 60 else at  # a stamp from before midnight
    return None


def holding(prom, job):
    """(when, labels with alertstate) of each alert of `job` whose expression holds now (pending
    or firing); an alert may hold with several label sets (e.g. one per label kind). `when` is the
    rule evaluation in which the expression first held (Prometheus's activeAt), not the time this
    poll saw it. Read from the rule manager's state (/api/v1/alerts), which is current at each
    evaluation; the ALERTS series it also writes was seen here to lag by up to 30 s."""
    alerts = prom.api("alerts")["alerts"]
    return [(datetime.fromisoformat(a["activeAt"]).timestamp(), dict(a["labels"], alertstate=a["state"]))
            for a in alerts if a["labels"].get("job") == job]


def pushed_ranks(pgw_addr, job):
    """How many ranks of `job` have pushed their last progress to the Pushgateway."""
    with urllib.request.urlopen(f"http://{pgw_addr}/metrics", timeout=5) as r:
        lines = r.read().decode().splitlines()
    return len({re.search(r'rank="(\d+)"', line).group(1) for line in lines
                if line.startswith("trainguard_last_progress_timestamp_seconds{") and f'job="{job}"' in line})


def ranks_in(prom, selector):
    """How many ranks Prometheus holds series of `selector` for now, however many outputs
    (endpoint, Pushgateway, textfile) carry each rank's."""
    result = prom.query(f"count(max by (rank) ({selector}))")
    return int(result[0]["value"][1]) if result else 0


def check_series_kept(prom, job):
    """Fails unless Prometheus still holds both ranks' last-progress series: the alert held while
    the ranks' values stayed (Pushgateway, textfile), not because their series went silent."""
    kept = ranks_in(prom, f'trainguard_last_progress_timestamp_seconds{{job="{job}"}}')
    if kept != 2:
        raise CaseFailed(f"the ranks' last-progress series were not kept while the alert held: {kept} of 2 ranks")


def run_case(name, case, work):
    job = f"alerts-{name.replace('_', '-')}"
    targets = work / "targets.json"
    services = []  # the Slurm setup's Pushgateway and node_exporter
    pgw_addr = node_addr = None
    args = COMMON + ["--metrics-targets", str(targets), "--metrics-job", job, "--checkpoint", str(work / "ckpt"),
                     "--bundle-dir", str(work / "faults")] + case["args"]
    if case.get("slurm"):
        pgw_addr = f"127.0.0.1:{free_port()}"
        node_addr = f"127.0.0.1:{free_port()}"
        textfiles = work / "textfile"
        textfiles.mkdir()
        for command, addr, what in (
                # Debian's Pushgateway persists its groups to /var/lib/prometheus by default, and
                # would load those of earlier cases and runs: kept in memory only.
                (["prometheus-pushgateway", f"--web.listen-address={pgw_addr}", "--persistence.file="],
                 pgw_addr, "the Pushgateway"),
                (["prometheus-node-exporter", "--collector.disable-defaults", "--collector.textfile",
                  f"--collector.textfile.directory={textfiles}", f"--web.listen-address={node_addr}"],
                 node_addr, "node_exporter")):
            services.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_ready(f"http://{addr}/metrics", what, services[-1])
        args += ["--pushgateway", f"http://{pgw_addr}", "--metrics-textfile", str(textfiles)]
    blocker = None
    if case.get("block_rank1_port"):
        # Endpoints on BASE + local rank, with BASE + 1 held here: rank 1's cannot start.
        blocker, base = held_port_after_free_one()
        args[args.index("--metrics-port") + 1] = str(base)
    prom = start_prometheus(work, targets, pgw_addr, node_addr)
    err_path = work / "job.err"
    with open(work / "job.out", "w") as out, open(err_path, "w") as err:
        mpirun = subprocess.Popen(MPIRUN + [BIN] + args, stdout=out, stderr=err, start_new_session=True)
    start = time.time()  # wall-clock times throughout: the fault's comes from the job's log
    fault_at = None
    ended_at = None
    first = {}  # (alertname, its labels) -> (the evaluation it first held in, its labels with alertstate)
    frozen = []
    try:
        while True:
            now = time.time()
            if now - start > case.get("limit_s", 300):
                raise CaseFailed(f"the case did not settle within {case.get('limit_s', 300)} s; held: {sorted(first)}")
            if fault_at is None and case.get("fault"):
                fault_at = logged_at(case["fault"], err_path.read_text())
            if (case.get("freeze") and not frozen
                    and ranks_in(prom, f'trainguard_steps_total{{job="{job}"}} > 0') == 2
                    and (not pgw_addr or pushed_ranks(pgw_addr, job) == 2)):
                # Both ranks scraped while training (and in the Slurm setup, both pushed at an
                # epoch end): freeze them.
                frozen = trainguard_pids(job)
                if len(frozen) != 2:
                    raise CaseFailed(f"found {len(frozen)} trainguard processes of {job}, not 2")
                for pid in frozen:
                    os.kill(pid, signal.SIGSTOP)
                fault_at = time.time()
            for active_at, labels in holding(prom, job):
                key = (labels["alertname"], tuple(sorted((k, v) for k, v in labels.items() if k != "alertstate")))
                first.setdefault(key, (active_at, labels))
            if ended_at is None and mpirun.poll() is not None:
                ended_at = now
            held = {name for name, _ in first}
            expected_seen = all(a in held for a in case["expect"])
            if case.get("until_alert"):
                if expected_seen:
                    if case.get("series_kept"):
                        check_series_kept(prom, job)
                    break
            elif ended_at is not None and now - ended_at >= case["after_s"] and (expected_seen or now - ended_at > 60):
                break
            time.sleep(1)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGKILL)
        if mpirun.poll() is None:
            os.killpg(mpirun.pid, signal.SIGKILL)
        mpirun.wait()
        prom.stop()
        if blocker:
            blocker.close()
        for service in services:
            service.terminate()
            service.wait()
    log = err_path.read_text()
    if case["exit"] is not None and mpirun.returncode != case["exit"]:
        raise CaseFailed(f"the job exited {mpirun.returncode}, expected {case['exit']}:\n{log[-3000:]}")
    if case.get("fault") and fault_at is None:
        raise CaseFailed(f"the job never logged its fault /{case['fault']}/:\n{log[-3000:]}")
    report = []
    held = {name for name, _ in first}
    for alert, want in case["expect"].items():
        seen = [first[key] for key in first if key[0] == alert]
        if not seen:
            raise CaseFailed(f"{alert} never held for job {job}; held: {sorted(held)}\n{log[-2000:]}")
        matching = [(at, labels) for at, labels in seen if all(labels.get(k) == v for k, v in want.items())]
        if not matching:
            raise CaseFailed(f"{alert} held only with {[labels for _, labels in seen]}, expected {want}")
        seen_at, labels = min(matching, key=lambda entry: entry[0])
        since = f"{seen_at - fault_at:.0f} s after the fault" if fault_at else f"{seen_at - start:.0f} s after the start"
        report.append(f"{alert} {want} held {since} (first seen {labels.get('alertstate')})")
    unexpected = sorted(held - set(case["expect"]) - set(case.get("allowed", {})))
    if unexpected:
        raise CaseFailed(f"alerts that must not hold did: " +
                         "; ".join(f"{labels}" for (name, _), (_, labels) in first.items() if name in unexpected) +
                         f"\n{log[-2000:]}")
    for alert, why in case.get("allowed", {}).items():
        if alert in held:
            report.append(f"{alert} also held (allowed: {why})")
    if not case["expect"]:
        report.append(f"no alert held during the {ended_at - start:.0f} s run or the {case['after_s']} s after it")
    return report


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit(f"usage: alert_cases.py CASE (one of {', '.join(CASES)})")
    if not BIN:
        sys.exit("set TG_TEST_BIN to the trainguard executable")
    for tool in ("prometheus", "prometheus-pushgateway", "prometheus-node-exporter", "mpirun"):
        if not shutil.which(tool):
            sys.exit(f"FAILED: {tool} is not installed (scripts/setup.sh installs it)")
    name = sys.argv[1]
    work = Path(tempfile.mkdtemp(prefix=f"tg_alerts_{name}_"))
    try:
        for line in run_case(name, CASES[name], work):
            print(f"measured: {name}: {line}")
    except CaseFailed as e:
        print(f"FAILED: {name}: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        if not os.environ.get("KEEP_WORK"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
