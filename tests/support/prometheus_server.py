"""A real Prometheus for the tests (Debian's), on a free loopback port, with its configuration,
data and log in a folder the caller owns; stopped by stop(). Used by tests/k8s/check_dashboard.py
and tests/alerts/alert_cases.py."""
import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """Starts Prometheus with `config` (the prometheus.yml contents, a dict) and waits until it is
    ready; a failure raises `error` (the caller's exception class) with the end of its log."""

    def __init__(self, workdir, config, error=RuntimeError):
        self.error = error
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(workdir / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [BINARY, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise error(f"prometheus exited {self.proc.returncode}: {self.log_text()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise error(f"prometheus not ready within 30 s: {self.log_text()}")

    def log_text(self):
        self.log.flush()
        return (self.workdir / "prometheus.log").read_text()[-3000:]

    def api(self, path, **params):
        """The `data` of GET /api/v1/PATH?PARAMS; raises `error` when Prometheus says it failed."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        if body.get("status") != "success":
            raise self.error(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr, at=None):
        """The instant vector of `expr` at unix time `at` (default: now)."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        return self.api("query", **params)["result"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
