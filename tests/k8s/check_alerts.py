#!/usr/bin/env python3
"""Checks the alerts of k8s/prometheusrule.yaml (ctest k8s.alerts): writes the PrometheusRule's
.spec to a rules file, runs `promtool check rules` and `promtool test rules` with
tests/k8s/alerts_test.yaml, and checks that every alert has a test case that fires it and one in
which it stays silent, and that every trainguard_* name in the rules is one trainguard declares
(diagnostics/metrics/metrics.cc). Run by tests/k8s/with_tools.sh (pyyaml)."""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

import metric_names

ROOT = Path(__file__).resolve().parents[2]
RULE = ROOT / "k8s" / "prometheusrule.yaml"
TESTS = Path(__file__).resolve().parent / "alerts_test.yaml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


class CheckFailed(Exception):
    """A check failed; the message names the file and the alert."""


def rules_of(rule_doc):
    return [r for g in rule_doc["spec"]["groups"] for r in g["rules"]]


def promtool(*args, cwd):
    run = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd)
    out = (run.stdout + run.stderr).strip()
    if run.returncode != 0:
        raise CheckFailed(f"promtool {' '.join(args)} failed (exit {run.returncode}):\n{out}")
    return out


def check_names(rules):
    for rule in rules:
        bad = metric_names.undeclared(str(rule["expr"]))
        if bad:
            raise CheckFailed(f"k8s/prometheusrule.yaml: alert {rule.get('alert')}: {bad} are not series "
                              f"trainguard declares ({metric_names.METRICS_CC.relative_to(ROOT)})")
    print(f"ok: every trainguard_* name in {len(rules)} rules is declared in metrics.cc")


def check_coverage(rules):
    """Every alert needs a case that fires it and one where it stays silent."""
    tests = yaml.safe_load(TESTS.read_text())["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    for rule in rules:
        name = rule["alert"]
        mine = [c for c in cases if c["alertname"] == name]
        if not any(c.get("exp_alerts") for c in mine) or not any(not c.get("exp_alerts") for c in mine):
            raise CheckFailed(f"{TESTS.relative_to(ROOT)}: alert {name} needs a case that fires it and one that "
                              f"does not (has {len(mine)} cases)")
    print(f"ok: each of the {len(rules)} alerts has a firing and a silent test case")


def main():
    rule_doc = yaml.safe_load(RULE.read_text())
    rules = rules_of(rule_doc)
    with tempfile.TemporaryDirectory(prefix="tg-alerts-") as tmp:
        try:
            (Path(tmp) / "trainguard-rules.yaml").write_text(yaml.safe_dump(rule_doc["spec"], sort_keys=False))
            shutil.copy(TESTS, Path(tmp) / "alerts_test.yaml")
            print(promtool("check", "rules", "trainguard-rules.yaml", cwd=tmp))
            print(promtool("test", "rules", "alerts_test.yaml", cwd=tmp))
            check_names(rules)
            check_coverage(rules)
        except CheckFailed as e:
            print(f"FAILED: {e}")
            return 1
    print("all alert checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
