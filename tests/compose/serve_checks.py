#!/usr/bin/env python3
"""Checks on a live `ffe serve` (embedded broker, temp data dir, admin HTTP on a free port).

usage: serve_checks.py FFE_BIN REPO_ROOT MODE
  dashboard  every ffe_* metric the Grafana dashboard (compose/grafana/dashboards/ffe.json)
             queries is in the live /metrics scrape, and `promtool check metrics` passes on it
  logs       with --log-format json every stderr line is a JSON object {ts,level,logger,msg}
             (ffe serve's, and those of ffe sim and ffe produce);
             a password in --analytics (postgresql://u:secret@...) appears in no output, text
             or JSON, while the (unreachable) URL itself is logged, masked
Exit 0 when the checks pass; otherwise the reasons and exit 1.
"""
import json
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

FFE, ROOT, MODE = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30



def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """`ffe [global flags] serve ...` in its own process group, stdout/stderr to files."""

    def __init__(self, work, global_flags=(), serve_flags=()):
        self.work = work
        self.out_path = os.path.join(work, "serve.out")
        self.err_path = os.path.join(work, "serve.err")
        self.out = open(self.out_path, "w")
        self.err = open(self.err_path, "w")
        argv = [FFE, *global_flags, "serve", "--http", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"),
                *serve_flags]
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.http = None

    def wait_ready(self):
        deadline = time.time() + READY_TIMEOUT_S
        while time.time() < deadline:
            text = self.stdout()
            m = re.search(r"^ffe: ready: .*admin http (\S+)", text, re.M)
            if m:
                self.http = m.group(1)
                return
            if self.proc.poll() is not None:
                fail(f"ffe serve exited {self.proc.returncode} before ready:\n{self.stderr()}")
            time.sleep(0.1)
        fail("ffe serve was not ready in %d s:\n%s" % (READY_TIMEOUT_S, self.stderr()))

    def get(self, path):
        with urllib.request.urlopen(f"http://{self.http}{path}", timeout=10) as response:
            return response.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                fail("ffe serve did not stop within %d s of SIGTERM" % STOP_TIMEOUT_S)
        self.out.close()
        self.err.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stdout(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()


def dashboard_metric_names():
    with open(os.path.join(ROOT, "compose", "grafana", "dashboards", "ffe.json")) as f:
        dashboard = json.load(f)
    names = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            names.update(re.findall(r"\b(ffe_[a-zA-Z0-9_]+)", target["expr"]))
    return names


def check_dashboard(work):
    serve = Serve(work)
    try:
        serve.wait_ready()
        if serve.get("/readyz").strip() == "":
            pass
        # CDC's lag gauges need a pass of the pipeline; give it a moment, then scrape.
        time.sleep(2)
        text = serve.get("/metrics")
    finally:
        code = serve.stop()
    if code != 0:
        fail(f"ffe serve exited {code} after SIGTERM:\n{serve.stderr()}")

    exported = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            exported.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    wanted = dashboard_metric_names()
    if len(wanted) < 10:
        fail(f"the dashboard queries only {sorted(wanted)}")
    missing = sorted(wanted - exported)
    if missing:
        fail("the dashboard queries metrics ffe serve does not export: " + ", ".join(missing))

    if shutil.which("promtool") is None:
        fail("promtool is not installed (scripts/setup.sh installs Debian's prometheus package)")
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    if lint.returncode != 0:
        fail("promtool check metrics:\n" + lint.stdout + lint.stderr)
    print(f"dashboard: {len(wanted & exported)} of {len(wanted)} queried metrics exported "
          f"({len(exported)} series names in the scrape); promtool check metrics: ok")


def json_log_lines(err, who):
    """The non-empty stderr lines, each checked to be a {ts,level,logger,msg} JSON object."""
    lines = [l for l in err.splitlines() if l.strip()]
    if not lines:
        fail(f"{who} logged nothing at debug level")
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError as e:
            fail(f"{who}: a stderr line is not JSON ({e}): {line!r}")
        if not isinstance(record, dict) or set(record) != {"ts", "level", "logger", "msg"}:
            fail(f"{who}: a JSON log line is not {{ts,level,logger,msg}}: {line!r}")
        if record["level"] not in ("trace", "debug", "info", "warn", "error", "critical"):
            fail(f"{who}: unknown level in {line!r}")
        if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", record["ts"]):
            fail(f"{who}: ts is not ISO 8601 UTC with milliseconds: {line!r}")
    return lines


def check_logs(work):
    port = free_port()  # nothing listens there: CDC reports the database unreachable
    url = f"postgresql://u:secret@127.0.0.1:{port}/ffe"
    runs = {}
    for fmt in ("json", "text"):
        run_dir = os.path.join(work, fmt)
        os.makedirs(run_dir)
        serve = Serve(run_dir, global_flags=["--log-format", fmt, "--log-level", "debug"],
                      serve_flags=["--analytics", url])
        try:
            serve.wait_ready()
            time.sleep(1)
        finally:
            serve.stop()
        runs[fmt] = (serve.stdout(), serve.stderr())

    out, err = runs["json"]
    lines = json_log_lines(err, "ffe --log-format json serve")

    # A start that fails (no broker at that address) and a usage error: their last words are
    # JSON lines too, and so is whatever librdkafka's clients said before.
    failing_runs = {
        "an unreachable broker": (["--brokers", f"127.0.0.1:{free_port()}", "--analytics", "off",
                                   "--http", "127.0.0.1:0", "--data-dir", os.path.join(work, "unreachable")], 1),
        "a malformed --http": (["--http", "127.0.0.1", "--data-dir", os.path.join(work, "bad-http")], 2),
    }
    for what, (flags, expected_code) in failing_runs.items():
        run = subprocess.run([FFE, "--log-format", "json", "--log-level", "debug", "serve", *flags],
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if run.returncode != expected_code:
            fail(f"ffe serve with {what} exited {run.returncode}, not {expected_code}:\n{run.stderr}")
        records = [json.loads(l) for l in json_log_lines(run.stderr, f"ffe serve with {what}")]
        if not any(r["level"] == "error" and r["msg"].startswith("ffe serve: ") for r in records):
            fail(f"ffe serve with {what}: no JSON error line says why it stopped:\n{run.stderr}")
    # Flags the command line itself refuses (an unknown flag, a value of the wrong kind), with
    # --log-format json before or after the command: the one error line is JSON as well.
    for argv in (["--log-format", "json", "serve", "--bogus"], ["serve", "--shards", "x", "--log-format=json"],
                 ["--log-format", "json", "replay", "--data-dir", work, "-X", "noequals"]):
        run = subprocess.run([FFE, *argv], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if run.returncode != 2:
            fail(f"ffe {' '.join(argv)} exited {run.returncode}, not 2:\n{run.stderr}")
        records = [json.loads(l) for l in json_log_lines(run.stderr, f"ffe {' '.join(argv)}")]
        if len(records) != 1 or records[0]["level"] != "error":
            fail(f"ffe {' '.join(argv)}: expected one JSON error line:\n{run.stderr}")
    # The simulators and the producer write their own lines (adapters/sim): JSON too. Against
    # a port where nothing listens, each says so (librdkafka's warnings) before it is stopped.
    nowhere = f"127.0.0.1:{free_port()}"
    sim = subprocess.Popen([FFE, "--log-format", "json", "sim", "payment", "--brokers", nowhere],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    time.sleep(2)
    sim.send_signal(signal.SIGTERM)
    _, sim_err = sim.communicate(timeout=30)
    produce = subprocess.run([FFE, "--log-format", "json", "produce", "orders", "--brokers", nowhere, "--count", "3",
                              "-X", "message.timeout.ms=1500"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if produce.returncode != 1:
        fail(f"ffe produce against {nowhere} exited {produce.returncode}, not 1:\n{produce.stderr}")
    for who, err_text, wanted in (("ffe --log-format json sim payment", sim_err, "answering"),
                                  ("ffe --log-format json produce orders", produce.stderr, "no broker answered")):
        records = [json.loads(l) for l in json_log_lines(err_text, who)]
        if not any(wanted in r["msg"] for r in records) or not any(r["level"] == "warn" for r in records):
            fail(f"{who}: expected an info line with '{wanted}' and a warning among its JSON lines:\n{err_text}")
    for fmt, (out, err) in runs.items():
        if "secret" in out or "secret" in err:
            fail(f"the analytics password appears in the {fmt} output:\n{out}\n{err}")
        if f"127.0.0.1:{port}" not in out + err:
            fail(f"the {fmt} run never mentions the analytics URL, so the check above proves nothing:\n{err}")
    print(f"logs: {len(lines)} JSON lines parse as {{ts,level,logger,msg}}, and so do those of a start that "
          "fails, of usage errors (the command line's own too) and of `ffe sim` and `ffe produce`; the analytics password appears in neither the JSON nor the text run "
          "(the URL is logged masked)")


def main():
    work = tempfile.mkdtemp(prefix="ffe-compose-test-")
    try:
        if MODE == "dashboard":
            check_dashboard(work)
        elif MODE == "logs":
            check_logs(work)
        else:
            fail("unknown mode " + MODE)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
