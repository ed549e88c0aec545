"""The trainguard_* series names that trainguard declares (diagnostics/metrics/metrics.cc), and the
names a PromQL text uses, so that the dashboard and the alerts can be checked for misspellings even
where a run has no data for a series."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METRICS_CC = ROOT / "diagnostics" / "metrics" / "metrics.cc"
_NAME = re.compile(r"\btrainguard_[a-z0-9_]+\b")


def declared():
    """Every series name metrics.cc declares; a histogram's _bucket, _sum and _count included."""
    text = METRICS_CC.read_text()
    names = set(re.findall(r'"(trainguard_[a-z0-9_]+)"', text))
    for histogram in re.findall(r'BuildHistogram\(\)\s*\.Name\("(trainguard_[a-z0-9_]+)"\)', text):
        names |= {histogram + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names


def used(promql):
    """The trainguard_* names in a PromQL expression."""
    return set(_NAME.findall(promql))


def undeclared(promql):
    """Names in `promql` that metrics.cc does not declare (misspellings)."""
    return sorted(used(promql) - declared())
