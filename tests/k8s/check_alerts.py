#!/usr/bin/env python3
"""Checks the alerts of k8s/prometheusrule.yaml (ctest k8s.alerts): writes the PrometheusRule's
.spec to a rules file, runs `promtool check rules` and `promtool test rules` with
tests/k8s/alerts_test.yaml, and checks that every alert has a test case that fires it and one in
which it stays silent, that every trainguard_* name in the rules is one trainguard declares
(diagnostics/metrics/metrics.cc), and that every alert's runbook_url is its own section of
docs/metrics-and-alerts.md, which says what the alert means, what to check first and what to do.
Run by tests/k8s/with_tools.sh (pyyaml)."""
import re
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
RUNBOOKS = ROOT / "docs" / "metrics-and-alerts.md"
# Where the runbooks are published; the part after it is the page's path in the repository.
RUNBOOK_PREFIX = "https://github.com/trainguard/trainguard/blob/main/"
RUNBOOK_PARTS = ("**What it means.**", "**Check first.**", "**What to do.**")


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


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, blanks to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def sections(page):
    """{anchor: the heading's text, up to the next heading} of a Markdown page."""
    found, current = {}, None
    for line in page.read_text().splitlines():
        m = re.match(r"#+ (.*)", line)
        if m:
            current = github_anchor(m.group(1))
            found[current] = ""
        elif current is not None:
            found[current] += line + "\n"
    return found


def check_runbooks(rules):
    """Every alert links its own section of docs/metrics-and-alerts.md, under one prefix, and the
    section says what the alert means, what to check first and what to do."""
    page = sections(RUNBOOKS)
    want_page = RUNBOOK_PREFIX + str(RUNBOOKS.relative_to(ROOT))
    for rule in rules:
        name = rule["alert"]
        url = rule.get("annotations", {}).get("runbook_url", "")
        where = f"k8s/prometheusrule.yaml: alert {name}"
        page_url, _, anchor = url.partition("#")
        if page_url != want_page or not anchor:
            raise CheckFailed(f"{where}: runbook_url {url!r} is not {want_page}#<its section>")
        if anchor != github_anchor(name):
            raise CheckFailed(f"{where}: runbook_url points at #{anchor}, not at its own section #{github_anchor(name)}")
        if anchor not in page:
            raise CheckFailed(f"{where}: {RUNBOOKS.relative_to(ROOT)} has no heading for #{anchor}")
        missing = [p for p in RUNBOOK_PARTS if p not in page[anchor]]
        if missing:
            raise CheckFailed(f"{RUNBOOKS.relative_to(ROOT)}, section {name}: no {missing}")
    print(f"ok: each of the {len(rules)} alerts links its section of {RUNBOOKS.relative_to(ROOT)}, which says "
          "what it means, what to check first and what to do")


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
            check_runbooks(rules)
        except CheckFailed as e:
            print(f"FAILED: {e}")
            return 1
    print("all alert checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
