#!/usr/bin/env python3
"""Checks k8s/dashboard.json (and the alert expressions) against a real Prometheus that scraped a
real trainguard run (ctest k8s.dashboard). There is no Grafana here and no dashboard schema, so:

1. Structure: schema version, the `datasource` and `job` variables, every panel on ${datasource},
   unique ids and refIds, grid positions within 24 columns, every trainguard_* selector filtered by
   job="$job", every trainguard_* name declared by trainguard (diagnostics/metrics/metrics.cc).
2. Data: Prometheus 2.42 (Debian) starts on a free loopback port with a temporary folder and a
   file_sd job (scrape interval 1 s); `mpirun -np 2 trainguard train` runs about 25 s on a slice of
   Fashion-MNIST with planted bad labels (policy ignore: they are counted, training goes on), a
   checkpoint, and an injected NaN in its third epoch (exit 10) whose diagnosis is slowed so that
   the failure is scraped while the ranks are still up. Every panel query, with the dashboard's
   variables replaced by concrete values, is then run at the last moment both ranks were up: a
   query that errors or returns nothing fails the test, unless every series it reads is listed in
   ALLOWED_EMPTY with the reason it cannot exist on this run. The `job` variable's label_values()
   must list the run's job.
3. The alert expressions of k8s/prometheusrule.yaml run on the same data: they must parse and
   evaluate; those that must fire on this run (bad labels, a failure) fire, and those that must
   not (no progress, device assert, missing ranks) do not.

Run by tests/k8s/with_tools.sh (pyyaml); the trainguard binary is $TG_TEST_BIN.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import metric_names

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from prometheus_server import Prometheus  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "k8s" / "dashboard.json"
RULES = ROOT / "k8s" / "prometheusrule.yaml"
JOB = "k8s-dashboard-test"
# Grafana's $__rate_interval and $__interval for a 1 s scrape would be a few seconds; the run's
# last steps come a few seconds before its last scrape (the slowed diagnosis), so rates use 30 s.
RATE_INTERVAL = "30s"
INTERVAL = "5s"
FAULT_STEP = 56  # epoch 3 of 3 (24 steps an epoch)
RUN_ARGS = [
    "train", "--dataset", "fashion-mnist", "--train-samples", "3000", "--test-samples", "500", "--width", "0.25",
    "--threads", "1", "--epochs", "3", "--metrics-port", "0", "--metrics-bind", "127.0.0.1", "--metrics-job", JOB,
    # Planted bad labels under the ignore policy: counted by validation, skipped by the loss.
    "--plant-label", "5=10,9=-3,11=abc", "--bad-labels", "ignore",
    # A NaN in rank 1's batch: every rank stops with exit 10; rank 1's diagnosis waits 6 s first,
    # during which rank 0, waiting for it, serves its failure count.
    "--inject-fault", f"nan:rank=1:step={FAULT_STEP},slow-diagnosis:rank=1:step={FAULT_STEP}:seconds=6",
]
EXPECTED_EXIT = 10
# Series that cannot exist on this run, and why. Any other empty query fails the test.
ALLOWED_EMPTY = {
    "trainguard_gpu_memory_allocated_bytes": "GPU memory is read on CUDA devices only; this run is on the CPU",
    "trainguard_gpu_memory_reserved_bytes": "GPU memory is read on CUDA devices only; this run is on the CPU",
}
# What each alert must do on this run (None: only evaluate it).
ALERTS_EXPECTED = {
    "TrainguardInvalidLabels": True,  # 3 planted bad labels
    "TrainguardRunFailed": True,  # the injected NaN: non_finite, exit 10
    "TrainguardDeviceSideAssert": False,
    "TrainguardNoProgress": False,
    "TrainguardStraggler": None,  # two ranks on a shared machine: depends on its load
    "TrainguardThroughputDropped": None,  # depends on the machine's load
    "TrainguardRanksMissing": False,  # both ranks up
    "TrainguardRecoveredInPlace": False,  # one run, never restarted
}


class CheckFailed(Exception):
    """A check failed; the message names the file, the panel or the alert."""


# --- 1. Structure ------------------------------------------------------------------------------


def queries_of(dashboard):
    """[(panel title, refId, expr)] of every panel with targets."""
    return [(p["title"], t["refId"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def check_variables(dashboard):
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    ds, job = variables.get("datasource"), variables.get("job")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        raise CheckFailed("k8s/dashboard.json: templating needs a `datasource` variable of type datasource, prometheus")
    if not job or job.get("type") != "query" or "trainguard_run_info" not in json.dumps(job.get("query")):
        raise CheckFailed("k8s/dashboard.json: templating needs a `job` query variable over trainguard_run_info")
    if job.get("datasource", {}).get("uid") != "${datasource}":
        raise CheckFailed("k8s/dashboard.json: the job variable must query ${datasource}")


def check_panels_structure(dashboard):
    ids = [p["id"] for p in dashboard["panels"]]
    if len(set(ids)) != len(ids):
        raise CheckFailed(f"k8s/dashboard.json: panel ids repeat: {ids}")
    for p in dashboard["panels"]:
        where = f"k8s/dashboard.json panel {p['id']} '{p.get('title')}'"
        grid = p.get("gridPos", {})
        if not all(k in grid for k in "hwxy") or grid["x"] + grid["w"] > 24:
            raise CheckFailed(f"{where}: gridPos {grid} must have h, w, x, y within 24 columns")
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}" or not p.get("targets"):
            raise CheckFailed(f"{where}: needs targets and datasource uid ${{datasource}}")
        refs = [t.get("refId") for t in p["targets"]]
        if len(set(refs)) != len(refs) or not all(t.get("expr") for t in p["targets"]):
            raise CheckFailed(f"{where}: every target needs an expr and its own refId ({refs})")


SELECTOR = re.compile(r"\b(trainguard_[a-z0-9_]+)(\{[^}]*\})?")


def check_selectors_and_names(dashboard):
    for title, ref, expr in queries_of(dashboard):
        for name, labels in SELECTOR.findall(expr):
            if 'job="$job"' not in labels:
                raise CheckFailed(f"k8s/dashboard.json '{title}' {ref}: {name} is not filtered by job=\"$job\"")
        bad = metric_names.undeclared(expr)
        if bad:
            raise CheckFailed(f"k8s/dashboard.json '{title}' {ref}: {bad} are not series trainguard declares")
    print(f"ok: dashboard structure, variables, {len(queries_of(dashboard))} queries filtered by job, names declared")


# --- 2. Prometheus and a run -------------------------------------------------------------------


def start_prometheus(workdir, targets_file):
    """A Prometheus on loopback that scrapes the file_sd targets of `targets_file` every second."""
    return Prometheus(workdir, {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": "trainguard-files",
            # trainguard's series carry job and rank themselves, as the file_sd labels do.
            "honor_labels": True,
            "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
        }],
    }, error=CheckFailed)


def run_trainguard(workdir):
    """Runs the 2-rank job; returns (exit code, start, end, output)."""
    binary = os.environ.get("TG_TEST_BIN")
    if not binary:
        raise CheckFailed("TG_TEST_BIN is not set: run through ctest (or set it to build/launcher/trainguard)")
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-x", "OMP_NUM_THREADS=1",
           "-np", "2", binary, *RUN_ARGS, "--metrics-targets", str(workdir / "targets.json"),
           "--checkpoint", str(workdir / "run.ckpt"), "--bundle-dir", str(workdir / "faults"),
           "--run-config", "", "--label-report", ""]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINGUARD_")}
    start = time.time()
    run = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=240)
    return run.returncode, start, time.time(), run.stdout + run.stderr


def last_alive(prom, start, end):
    """The last time both ranks were up (scraped), from the `up` series."""
    data = prom.api("query_range", query=f'count(up{{job="{JOB}"}} == 1)', start=f"{start:.3f}",
                    end=f"{end + 2:.3f}", step="0.5")
    times = [float(t) for series in data["result"] for t, v in series["values"] if v == "2"]
    if len(times) < 5:
        raise CheckFailed(f"Prometheus scraped both ranks at {len(times)} instants only (5 or more needed): the run "
                          f"was too short or the targets file was not read\n{prom.log_text()}")
    return max(times)


# --- Panel queries -------------------------------------------------------------------------------


def concrete(expr, range_s):
    """`expr` with the dashboard's variables replaced; a variable left over is an error."""
    out = (expr.replace("${job}", JOB).replace("$job", JOB).replace("$__rate_interval", RATE_INTERVAL)
           .replace("$__range", f"{range_s}s").replace("$__interval", INTERVAL))
    if "$" in out:
        raise CheckFailed(f"k8s/dashboard.json: unknown variable in {expr}")
    return out


def check_panel_queries(prom, dashboard, at, range_s):
    allowed, failed = [], []
    for title, ref, expr in queries_of(dashboard):
        query = concrete(expr, range_s)
        try:
            result = prom.query(query, at)
        except CheckFailed as e:
            failed.append(f"'{title}' {ref}: Prometheus refused {query}: {e}")
            continue
        if result:
            continue
        names = metric_names.used(expr)
        if not names or any(n not in ALLOWED_EMPTY for n in names):
            failed.append(f"'{title}' {ref}: no data for {query}")
            continue
        allowed.append(f"'{title}' {ref} ({'; '.join(sorted({ALLOWED_EMPTY[n] for n in names}))})")
    if failed:
        raise CheckFailed("k8s/dashboard.json: panel queries without data on the run:\n  " + "\n  ".join(failed))
    print(f"ok: {len(queries_of(dashboard)) - len(allowed)} panel queries return data on the run")
    for line in allowed:
        print(f"  empty as expected: {line}")


def check_run_was_cpu(prom, at):
    info = prom.query(f'trainguard_run_info{{job="{JOB}"}}', at)
    devices = {s["metric"].get("device") for s in info}
    if devices != {"cpu"}:
        raise CheckFailed(f"ALLOWED_EMPTY assumes a CPU run; trainguard_run_info says device {devices}")


def check_job_variable(prom, start, end):
    values = prom.api("label/job/values", **{"match[]": "trainguard_run_info", "start": f"{start:.0f}",
                                             "end": f"{end:.0f}"})
    if JOB not in values:
        raise CheckFailed(f"the job variable's label_values(trainguard_run_info, job) gives {values}, not {JOB}")
    print(f"ok: the job variable lists {JOB}")


# --- 3. Alert expressions --------------------------------------------------------------------------


def check_alert_exprs(prom, at):
    rules = [r for g in yaml.safe_load(RULES.read_text())["spec"]["groups"] for r in g["rules"]]
    seen = set()
    for rule in rules:
        name = rule["alert"]
        seen.add(name)
        try:
            result = prom.query(str(rule["expr"]), at)
        except CheckFailed as e:
            raise CheckFailed(f"k8s/prometheusrule.yaml {name}: Prometheus refused its expr: {e}")
        want = ALERTS_EXPECTED.get(name, "missing")
        if want == "missing":
            raise CheckFailed(f"k8s/prometheusrule.yaml {name}: add it to ALERTS_EXPECTED in {Path(__file__).name}")
        if want is not None and bool(result) != want:
            raise CheckFailed(f"k8s/prometheusrule.yaml {name}: {'fires' if result else 'does not fire'} on the run, "
                              f"expected the opposite: {[r['metric'] for r in result]}")
        print(f"ok: alert {name}: {'fires' if result else 'silent'}"
              f"{'' if want is not None else ' (not asserted)'}: {[r['metric'] for r in result][:3]}")
    if seen != set(ALERTS_EXPECTED):
        raise CheckFailed(f"ALERTS_EXPECTED names alerts that k8s/prometheusrule.yaml lacks: {set(ALERTS_EXPECTED) - seen}")


def main():
    dashboard = json.loads(DASHBOARD.read_text())
    with tempfile.TemporaryDirectory(prefix="tg-dashboard-") as tmp:
        workdir = Path(tmp)
        prom = None
        try:
            check_variables(dashboard)
            check_panels_structure(dashboard)
            check_selectors_and_names(dashboard)
            prom = start_prometheus(workdir, workdir / "targets.json")
            code, start, end, output = run_trainguard(workdir)
            print(f"trainguard run: exit {code} after {end - start:.1f} s")
            if code != EXPECTED_EXIT:
                raise CheckFailed(f"the run exited {code}, expected {EXPECTED_EXIT} (the injected NaN):\n{output[-4000:]}")
            at = last_alive(prom, start, end)
            range_s = int(at - start) + 5
            print(f"querying at the last instant both ranks were up: {at - start:.1f} s into the run")
            check_run_was_cpu(prom, at)
            check_panel_queries(prom, dashboard, at, range_s)
            check_job_variable(prom, start, end)
            check_alert_exprs(prom, at)
        except CheckFailed as e:
            print(f"FAILED: {e}")
            return 1
        finally:
            if prom:
                prom.stop()
    print("all dashboard checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
