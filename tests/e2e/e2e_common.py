"""Shared harness of the end-to-end tests (tests/e2e/README.md).

Everything here meets ffe from the outside, as a user does: `ffe broker`, `ffe serve` and
`ffe sim` run as separate processes on 127.0.0.1; the Kafka client is kafka-python (Debian's
python3-kafka), which the project did not write; state is read through the admin HTTP API
(docs/http.md). Standard library plus kafka-python only.

Every process is started in its own session (its own process group) with a parent-death
signal (setpriv --pdeathsig KILL, when available), and every group is SIGKILLed and every
temp dir removed at exit, whatever the way out (normal end, exception, SIGTERM/SIGINT from
ctest or a user). FFE_E2E_KEEP=1 keeps the temp dir (logs, data dirs) for a post-mortem.
"""

import atexit
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback


def ensure_kafka_python():
    """Re-exec under /usr/bin/python3 when the python3 on PATH (pyenv, venv) lacks Debian's
    python3-kafka. Call before importing kafka."""
    try:
        import kafka  # noqa: F401
        return
    except ImportError:
        pass
    system = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system) \
            and not os.environ.get("FFE_E2E_REEXEC"):
        os.environ["FFE_E2E_REEXEC"] = "1"
        os.execv(system, [system] + sys.argv)
    sys.stderr.write("e2e: kafka-python is missing: apt-get install python3-kafka (scripts/setup.sh does)\n")
    sys.exit(2)


ensure_kafka_python()

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

import logging  # noqa: E402

# kafka-python logs every connection refused while a broker is paused or an engine restarts.
logging.getLogger("kafka").setLevel(logging.CRITICAL)

# librdkafka settings for the simulators: the mock cluster answers an empty fetch only when
# fetch.wait.max.ms is up (docs/kafka.md "Tuning"), and its group rebalance waits
# session.timeout.ms - 1000 (../shared/STACK.md).
def sim_kafka(session_timeout_ms=6000):
    return ["-X", "fetch.wait.max.ms=10", "-X", "session.timeout.ms=%d" % session_timeout_ms,
            "-X", "heartbeat.interval.ms=500"]


def log(message):
    sys.stdout.write("[%7.2f] %s\n" % (time.monotonic() - _T0, message))
    sys.stdout.flush()


_T0 = time.monotonic()


class TestFailed(Exception):
    pass


class Proc:
    """One child process in its own process group, its output in a log file."""

    def __init__(self, name, args, log_path):
        self.name = name
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")
        prefix = []
        if Harness.setpriv:
            prefix = [Harness.setpriv, "--pdeathsig", "KILL"]
        self.popen = subprocess.Popen(prefix + args, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.popen.pid

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_for(self, pattern, timeout):
        """Waits until the output matches `pattern` (a regex); returns the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.output())
            if m:
                return m
            if self.popen.poll() is not None:
                raise TestFailed("%s exited (code %s) before printing /%s/; its output:\n%s" %
                                 (self.name, self.popen.returncode, pattern, tail(self.output())))
            if time.monotonic() > deadline:
                raise TestFailed("%s did not print /%s/ within %.0f s; its output:\n%s" %
                                 (self.name, pattern, timeout, tail(self.output())))
            time.sleep(0.05)

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.killpg(self.pid, sig)

    def kill(self):
        """SIGKILL the whole group and reap."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def unused_port():
    """A loopback port nothing listens on (bound and released: free for the moment)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(text, lines=40):
    return "\n".join("    | " + line for line in text.splitlines()[-lines:])


def sweep_stale_dirs():
    """Removes the temp dirs of e2e runs whose script is gone (SIGKILLed: no cleanup ran; its
    children died with it through the parent-death signal)."""
    root = tempfile.gettempdir()
    for entry in os.listdir(root):
        if not entry.startswith("ffe-e2e-"):
            continue
        path = os.path.join(root, entry)
        try:
            with open(os.path.join(path, "owner.pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):
            pass


class Harness:
    setpriv = None

    def __init__(self, name, ffe):
        if not os.path.isfile(ffe) or not os.access(ffe, os.X_OK):
            sys.stderr.write("e2e: %s is not an executable ffe binary\n" % ffe)
            sys.exit(2)
        self.ffe = os.path.abspath(ffe)
        self.name = name
        sweep_stale_dirs()
        self.dir = tempfile.mkdtemp(prefix="ffe-e2e-%s-" % name)
        with open(os.path.join(self.dir, "owner.pid"), "w") as f:
            f.write("%d\n" % os.getpid())
        self.procs = []
        self.failures = []
        self._counter = 0
        self._cleaned = False
        Harness.setpriv = shutil.which("setpriv")
        if Harness.setpriv and subprocess.call([Harness.setpriv, "--pdeathsig", "KILL", "true"],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            Harness.setpriv = None
        atexit.register(self.cleanup)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        log("%s: temp dir %s, ffe %s" % (name, self.dir, self.ffe))

    def _on_signal(self, signum, frame):
        sys.stderr.write("e2e: signal %d: cleaning up\n" % signum)
        self.cleanup()
        os._exit(128 + signum)

    # ---- processes -------------------------------------------------------------------------

    def spawn(self, name, args):
        self._counter += 1
        proc = Proc(name, args, os.path.join(self.dir, "%02d-%s.log" % (self._counter, name)))
        self.procs.append(proc)
        return proc

    def start_broker(self, partitions=4):
        proc = self.spawn("broker", [self.ffe, "broker", "--partitions", str(partitions)])
        m = proc.wait_for(r"ffe: embedded Kafka broker at (\S+)\n", 30)
        proc.wait_for(r"ffe broker: topics ", 30)
        proc.bootstrap = m.group(1)
        log("broker pid %d at %s" % (proc.pid, proc.bootstrap))
        return proc

    def start_serve(self, brokers, data_dir, extra=(), ready_timeout=60):
        proc = self.spawn("serve", [self.ffe, "serve", "--brokers", brokers, "--data-dir", data_dir,
                                    "--http", "127.0.0.1:0"] + list(extra))
        m = proc.wait_for(r"ffe: ready: .*admin http (\S+)\n", ready_timeout)
        proc.http = Http(m.group(1))
        deadline = time.monotonic() + ready_timeout
        while proc.http.status("/readyz") != 200:
            if time.monotonic() > deadline:
                raise TestFailed("ffe serve: /readyz never answered 200")
            time.sleep(0.05)
        log("ffe serve pid %d ready, admin http %s" % (proc.pid, proc.http.address))
        return proc

    def start_sim(self, kind, brokers, session_timeout_ms=6000):
        proc = self.spawn("sim-" + kind, [self.ffe, "sim", kind, "--brokers", brokers, "--stats-interval", "2"]
                          + sim_kafka(session_timeout_ms))
        return proc

    def start_sims(self, brokers, session_timeout_ms=6000):
        return (self.start_sim("payment", brokers, session_timeout_ms),
                self.start_sim("shipping", brokers, session_timeout_ms))

    def warm_up(self, brokers, http, sku="sku-warmup"):
        """One order through the whole saga before any load: the simulators have joined their
        groups (the mock cluster makes a first member wait 3 s) and every hop works."""
        prod = producer(brokers)
        prod.send("ff.inventory.commands", key=sku.encode(), value=receive_stock(sku, 1, "r-warmup"))
        prod.flush(30)
        wait_for_stock(http, sku, 1)
        prod.send("ff.orders.commands", key=b"o-warmup", value=place_order("o-warmup", [(sku, 1)]))
        prod.flush(30)
        prod.close()
        t = time.monotonic()
        wait_until(lambda: (http.order("o-warmup")[1] or {}).get("terminal"), 60, "the warm-up order to end")
        state = http.order("o-warmup")[1]
        if state.get("state") != "FULFILLED":
            raise TestFailed("the warm-up order ended %s: %s" % (state.get("state"), state))
        log("warm-up order FULFILLED in %.1f s: the simulators answer" % (time.monotonic() - t))

    def check_alive(self, *procs):
        for p in procs:
            if not p.alive():
                raise TestFailed("%s (pid %d) died with code %s; its output:\n%s" %
                                 (p.name, p.pid, p.popen.returncode, tail(p.output())))

    def cleanup(self):
        if self._cleaned:
            return
        self._cleaned = True
        for p in reversed(self.procs):
            try:
                if p.alive():
                    os.killpg(p.pid, signal.SIGCONT)  # a paused process dies on SIGKILL anyway
            except OSError:
                pass
            p.kill()
        if os.environ.get("FFE_E2E_KEEP"):
            sys.stderr.write("e2e: kept %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- checks ----------------------------------------------------------------------------

    def check(self, condition, message):
        """A soft check: records the failure and goes on, so one run reports every problem."""
        if not condition:
            self.failures.append(message)
            log("FAIL: " + message)
        return condition

    def dump_logs(self, lines=40):
        for p in self.procs:
            sys.stdout.write("---- %s (pid %d, %s) last lines of %s\n%s\n" %
                             (p.name, p.pid, "running" if p.alive() else "exit %s" % p.popen.returncode,
                              p.log_path, tail(p.output(), lines)))

    def run(self, body):
        """Runs body(self); exit 0 when it passed, 1 with every failure listed otherwise."""
        started = time.monotonic()
        try:
            body(self)
        except TestFailed as e:
            self.failures.append(str(e))
            log("FAIL: " + str(e))
        except Exception:
            self.failures.append("unexpected exception:\n" + traceback.format_exc())
            log("FAIL: unexpected exception:\n" + traceback.format_exc())
        elapsed = time.monotonic() - started
        if self.failures:
            self.dump_logs()
            sys.stdout.write("\n%s: FAILED after %.1f s, %d problem(s):\n" % (self.name, elapsed, len(self.failures)))
            for f in self.failures:
                sys.stdout.write("  - %s\n" % f)
            sys.stdout.flush()
            self.cleanup()
            sys.exit(1)
        sys.stdout.write("%s: PASSED in %.1f s\n" % (self.name, elapsed))
        sys.stdout.flush()
        self.cleanup()
        sys.exit(0)


def wait_for_stock(http, sku, at_least, timeout=60):
    """Waits until /v1/skus/SKU shows at least `at_least` on hand. Two topics have no order
    between them: an order sent right after its stock may be decided first and end REJECTED
    (out of stock), so a test that needs it FULFILLED places it only after this."""
    def stock_in():
        status, body = http.sku(sku)
        return status == 200 and isinstance(body, dict) and body.get("onHand", 0) >= at_least
    wait_until(stock_in, timeout, "%s to have %d on hand" % (sku, at_least))


def wait_until(predicate, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TestFailed("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_for_outcomes(outcomes, http, order_ids, timeout, alive, after=""):
    """Waits until every order has an outcome (calling alive() while idle), or fails naming
    the missing ones and what HTTP says of a few."""
    missing = outcomes.wait_for(order_ids, timeout, on_idle=alive)
    if missing:
        sample = sorted(missing)[:10]
        raise TestFailed("%d orders without an outcome %s%d s, e.g. %s; HTTP: %s" %
                         (len(missing), after + " " if after else "after ", timeout, sample,
                          {o: http.order(o) for o in sample[:3]}))
    log("every order has an outcome")


def wait_quiet(http, timeout, still=1.0):
    """Waits until the engine stops moving (retries, relays, late replies): /v1/shards reads
    the same twice, `still` seconds apart. Returns that reading."""
    def quiet_snapshot():
        before = http.json("/v1/shards")[1]
        time.sleep(still)
        after = http.json("/v1/shards")[1]
        return after if before == after else None
    return wait_until(quiet_snapshot, timeout, "the engine to go quiet", interval=0)


# ---- HTTP -----------------------------------------------------------------------------------

class Http:
    """The admin HTTP API. One connection per request: on a keep-alive connection every
    request after the first costs about 40 ms here (the server's split response writes meet
    the client's delayed ACK: Nagle), which would make thousands of reads take minutes."""

    def __init__(self, address):
        self.address = address
        host, port = address.rsplit(":", 1)
        self.host, self.port = host, int(port)

    def get(self, path):
        """(status, body text); status 0 when the server could not be reached."""
        for attempt in range(2):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                conn.request("GET", path, headers={"Connection": "close"})
                r = conn.getresponse()
                body = r.read().decode("utf-8", "replace")
                return r.status, body
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
        return 0, ""

    def status(self, path):
        return self.get(path)[0]

    def json(self, path):
        status, body = self.get(path)
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, body

    def order(self, order_id, revision=None):
        return self.json("/v1/orders/%s%s" % (order_id, "" if revision is None else "?revision=%d" % revision))

    def sku(self, sku, revision=None):
        return self.json("/v1/skus/%s%s" % (sku, "" if revision is None else "?revision=%d" % revision))

    def metrics(self):
        status, body = self.get("/metrics")
        values = {}
        if status != 200:
            return values
        for line in body.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
        return values


# ---- Kafka (kafka-python) ---------------------------------------------------------------------

def producer(bootstrap, **extra):
    config = dict(bootstrap_servers=bootstrap, acks="all", linger_ms=5, retries=20,
                  request_timeout_ms=60000, max_block_ms=120000, api_version=(2, 3, 0))
    config.update(extra)
    return KafkaProducer(**config)


class TopicReader:
    """Reads a topic from its beginning, every partition, without a consumer group."""

    def __init__(self, bootstrap, topic):
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                      auto_offset_reset="earliest", fetch_max_wait_ms=10,
                                      request_timeout_ms=60000, api_version=(2, 3, 0))
        partitions = wait_until(lambda: self.consumer.partitions_for_topic(topic), 30, "partitions of " + topic)
        self.partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.partitions)
        self.consumer.seek_to_beginning(*self.partitions)
        self.records = []

    def poll(self, timeout=0.2):
        """Reads what is there now; returns the new records (also kept in self.records)."""
        new = []
        batches = self.consumer.poll(timeout_ms=int(timeout * 1000), max_records=10000)
        for tp in sorted(batches, key=lambda t: t.partition):
            new.extend(batches[tp])
        self.records.extend(new)
        return new

    def read_to_end(self, timeout=30):
        """Reads until every partition is at the end offset it had when called."""
        end = self.consumer.end_offsets(self.partitions)
        deadline = time.monotonic() + timeout
        while True:
            if all(self.consumer.position(tp) >= end[tp] for tp in self.partitions):
                return self.records
            if time.monotonic() > deadline:
                raise TestFailed("could not read %s to its end within %.0f s" % (self.topic, timeout))
            self.poll(0.2)

    def close(self):
        self.consumer.close()


def headers_of(record):
    return {k: (v.decode("utf-8", "replace") if v is not None else None) for k, v in (record.headers or [])}


def json_of(record):
    try:
        return json.loads(record.value.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


class Outcomes:
    """ff.orders.outcomes, by order id: every record kept (a repeat after a crash is legal)."""

    def __init__(self, bootstrap, topic="ff.orders.outcomes"):
        self.reader = TopicReader(bootstrap, topic)
        self.by_order = {}
        self.bad = []

    def poll(self, timeout=0.2):
        for r in self.reader.poll(timeout):
            o = json_of(r)
            if not isinstance(o, dict) or "orderId" not in o:
                self.bad.append(r)
                continue
            o["_key"] = r.key.decode("utf-8", "replace") if r.key is not None else None
            o["_ct"] = headers_of(r).get("content-type")
            self.by_order.setdefault(o["orderId"], []).append(o)

    def wait_for(self, order_ids, timeout, on_idle=None):
        """Waits until every order in order_ids has an outcome; returns the missing ones."""
        order_ids = set(order_ids)
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        while True:
            self.poll(0.3)
            missing = order_ids - set(self.by_order)
            if not missing or time.monotonic() > deadline:
                return missing
            if on_idle:
                on_idle()
            if time.monotonic() - last_report > 10:
                log("outcomes: %d of %d orders so far" % (len(order_ids) - len(missing), len(order_ids)))
                last_report = time.monotonic()

    def settle(self, seconds=2.0):
        """Keeps reading for a while, to catch late repeats."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll(0.2)


# ---- messages --------------------------------------------------------------------------------

def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def place_order(order_id, lines, token="tok_visa", country="US", deadline_ms=None, customer="c-1"):
    """lines: [(sku, qty)]"""
    body = {"orderId": order_id, "customerId": customer,
            "lines": [{"sku": s, "qty": q, "unitPriceCents": 100 + 7 * i} for i, (s, q) in enumerate(lines)],
            "payment": {"method": "card", "token": token},
            "shipTo": {"name": "A. Customer", "line1": "1 Main St", "city": "Springfield", "country": country}}
    if deadline_ms is not None:
        body["deadlineMs"] = deadline_ms
    return dumps({"placeOrder": body})


def cancel_order(order_id, reason="customer request"):
    return dumps({"cancelOrder": {"orderId": order_id, "reason": reason}})


def receive_stock(sku, qty, receipt_id):
    return dumps({"receiveStock": {"sku": sku, "qty": qty, "receiptId": receipt_id}})


# Binary Protobuf, hand-encoded from events/ffe/v1/*.proto (no generated Python code needed:
# the wire format of strings, int64 and nested messages is a few lines).

def _varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _pb_str(field, s):
    b = s.encode("utf-8")
    return _varint(field << 3 | 2) + _varint(len(b)) + b


def _pb_int(field, n):
    return _varint(field << 3 | 0) + _varint(n) if n else b""


def _pb_msg(field, body):
    return _varint(field << 3 | 2) + _varint(len(body)) + body


def place_order_pb(order_id, lines, token="tok_visa", country="US", deadline_ms=0, customer="c-1"):
    """ffe.v1.OrderCommand{place_order: PlaceOrder{...}} in binary (orders.proto, common.proto)."""
    body = _pb_str(1, order_id) + _pb_str(2, customer)
    for i, (s, q) in enumerate(lines):
        body += _pb_msg(3, _pb_str(1, s) + _pb_int(2, q) + _pb_int(3, 100 + 7 * i))  # OrderLine
    body += _pb_msg(4, _pb_str(1, "card") + _pb_str(2, token))                        # PaymentMethod
    body += _pb_msg(5, _pb_str(1, "A. Customer") + _pb_str(2, "1 Main St") + _pb_str(3, "Springfield")
                    + _pb_str(4, country))                                           # Address
    body += _pb_int(6, deadline_ms)
    return _pb_msg(1, body)


def payment_reply_pb(command_id, order_id, status, payment_id="", reason=""):
    """ffe.v1.PaymentReply in binary (payments.proto); status 1 APPROVED, 2 DECLINED, 3 FAILED."""
    return (_pb_str(1, command_id) + _pb_str(2, order_id) + _pb_int(3, status) +
            (_pb_str(4, payment_id) if payment_id else b"") + (_pb_str(5, reason) if reason else b""))


def adjust_stock(sku, delta, adjustment_id, reason="cycle count"):
    return dumps({"adjustStock": {"sku": sku, "delta": delta, "reason": reason, "adjustmentId": adjustment_id}})


def receive_stock_pb(sku, qty, receipt_id):
    """ffe.v1.InventoryCommand{receive_stock: ReceiveStock{sku, qty, receipt_id}} in binary."""
    return _pb_msg(1, _pb_str(1, sku) + _pb_int(2, qty) + _pb_str(3, receipt_id))


PROTOBUF = [("content-type", b"application/x-protobuf")]


# ---- invariant checks from the outside ------------------------------------------------------

TERMINAL = {"FULFILLED", "CANCELLED", "REJECTED"}


def strip(entity, *fields):
    return {k: v for k, v in entity.items() if k not in fields}


def check_outcomes_agree(h, outcomes, order_ids, allow_repeats):
    """Every order has an outcome; all outcomes of one order agree (orderId + revision +
    state); the key is the order id. Returns {orderId: outcome}."""
    final = {}
    repeats = 0
    for oid in sorted(order_ids):
        got = outcomes.by_order.get(oid)
        if not h.check(got, "order %s has no outcome on ff.orders.outcomes" % oid):
            continue
        first = got[0]
        ident = {(o.get("revision"), o.get("state"), o.get("shard")) for o in got}
        h.check(len(ident) == 1, "order %s has outcomes that disagree: %s" %
                (oid, [strip(o, "_ct") for o in got]))
        if len(got) > 1:
            repeats += 1
            if not allow_repeats:
                h.check(False, "order %s has %d outcome records (exactly one expected without a crash): %s" %
                        (oid, len(got), [strip(o, "_ct") for o in got]))
        h.check(first.get("state") in TERMINAL, "order %s outcome state %r is not terminal" % (oid, first.get("state")))
        h.check(first.get("_key") == oid, "order %s outcome keyed %r" % (oid, first.get("_key")))
        final[oid] = first
    extra = set(outcomes.by_order) - set(order_ids) - {"o-warmup"}
    h.check(not extra, "outcomes for orders nobody placed: %s" % sorted(extra)[:20])
    h.check(not outcomes.bad, "undecodable records on ff.orders.outcomes: %s" % outcomes.bad[:5])
    return final, repeats


def check_orders_over_http(h, http, final, spot_check=None):
    """Each order over HTTP: terminal, the outcome's state, terminalRevision == the outcome's
    revision, and (invariant 4) identical at every revision >= terminalRevision checked.
    Returns {orderId: order JSON}."""
    orders = {}
    spot = set(final) if spot_check is None else spot_check
    for oid, outcome in sorted(final.items()):
        status, o = http.order(oid)
        if not h.check(status == 200, "GET /v1/orders/%s: HTTP %s %s" % (oid, status, o)):
            continue
        orders[oid] = o
        h.check(o.get("terminal") is True, "order %s is not terminal over HTTP: %s" % (oid, o))  # invariant 5
        h.check(o.get("state") == outcome["state"], "order %s: HTTP state %s, outcome state %s" %
                (oid, o.get("state"), outcome["state"]))
        tr = o.get("terminalRevision")
        h.check(str(tr) == str(outcome.get("revision")), "order %s: terminalRevision %s, outcome revision %s" %
                (oid, tr, outcome.get("revision")))
        h.check(o.get("revision") == tr, "order %s changed after its terminal revision: revision %s, terminal %s" %
                (oid, o.get("revision"), tr))
        h.check(o.get("shard") == outcome.get("shard"), "order %s: HTTP shard %s, outcome shard %s" %
                (oid, o.get("shard"), outcome.get("shard")))
        if oid in spot and isinstance(tr, int):
            as_of = o.get("asOf")
            for r in sorted({tr, (tr + as_of) // 2, as_of}):
                st, at = http.order(oid, r)
                h.check(st == 200 and strip(at, "asOf") == strip(o, "asOf"),
                        "invariant 4: order %s at revision %d (terminal %d) differs: %s %s vs %s" %
                        (oid, r, tr, st, at, o))
            if tr > 1:
                st, before = http.order(oid, tr - 1)
                h.check(st == 404 or (st == 200 and before.get("terminal") is False),
                        "order %s at revision %d (before its terminal %d) is %s %s" % (oid, tr - 1, tr, st, before))
    return orders


def check_skus(h, http, skus, received, final):
    """Per SKU over HTTP: reserved == 0 (every hold committed or released), onHand ==
    received - shipped (+ adjustments), available == onHand - reserved >= 0, shipped <=
    received (invariant 1), receivedTotal == what was sent, and shippedTotal == the units of
    the FULFILLED outcomes' lines. Returns {sku: SKU JSON}."""
    shipped = {}
    for outcome in final.values():
        if outcome.get("state") == "FULFILLED":
            for line in outcome.get("lines", []):
                shipped[line["sku"]] = shipped.get(line["sku"], 0) + int(line["qty"])
    result = {}
    for sku in sorted(skus):
        status, s = http.sku(sku)
        if not h.check(status == 200, "GET /v1/skus/%s: HTTP %s %s" % (sku, status, s)):
            continue
        result[sku] = s
        on_hand, reserved, available = s["onHand"], s["reserved"], s["available"]
        h.check(reserved == 0, "sku %s still has %d reserved at the end: %s" % (sku, reserved, s))
        h.check(0 <= reserved <= on_hand, "invariant 1: sku %s reserved %d, onHand %d" % (sku, reserved, on_hand))
        h.check(available == on_hand - reserved and available >= 0,
                "sku %s available %d, onHand %d, reserved %d" % (sku, available, on_hand, reserved))
        h.check(on_hand == s["receivedTotal"] + s["adjustedInTotal"] - s["adjustedOutTotal"] - s["shippedTotal"],
                "sku %s onHand %d != received %d + adjIn %d - adjOut %d - shipped %d" %
                (sku, on_hand, s["receivedTotal"], s["adjustedInTotal"], s["adjustedOutTotal"], s["shippedTotal"]))
        h.check(s["shippedTotal"] <= s["receivedTotal"] + s["adjustedInTotal"] - s["adjustedOutTotal"],
                "invariant 1: sku %s shipped %d more than it had" % (sku, s["shippedTotal"]))
        h.check(s["receivedTotal"] == received.get(sku, 0),
                "sku %s receivedTotal %d, the receipts sent add up to %d" % (sku, s["receivedTotal"], received.get(sku, 0)))
        h.check(s["shippedTotal"] == shipped.get(sku, 0),
                "sku %s shippedTotal %d, the FULFILLED outcomes' lines add up to %d" %
                (sku, s["shippedTotal"], shipped.get(sku, 0)))
        h.check(s.get("openReservations", 0) == 0, "sku %s openReservations %s at the end" % (sku, s.get("openReservations")))
    return result


def check_compensations(h, final, payment_requests, payment_replies, shipment_requests, shipment_replies):
    """From the participants' topics: a FULFILLED order was never voided or its shipment
    cancelled; a CANCELLED order whose authorize was APPROVED (or never answered) got a void,
    and one whose shipment was CREATED got a cancel; a REJECTED order never reached payment.
    Also: one authorize and one ship command id per order (retries reuse them)."""
    def by_order(records):
        out = {}
        for r in records:
            m = json_of(r)
            if isinstance(m, dict) and "orderId" in m:
                out.setdefault(m["orderId"], []).append(m)
        return out

    preq, prep = by_order(payment_requests), by_order(payment_replies)
    sreq, srep = by_order(shipment_requests), by_order(shipment_replies)
    for oid, outcome in final.items():
        state = outcome.get("state")
        auth_ids = {m["commandId"] for m in preq.get(oid, []) if "authorize" in m}
        voids = [m for m in preq.get(oid, []) if "void" in m]
        ship_ids = {m["commandId"] for m in sreq.get(oid, []) if "create" in m}
        cancels = [m for m in sreq.get(oid, []) if "cancel" in m]
        h.check(len(auth_ids) <= 1 and len(ship_ids) <= 1,
                "order %s: several authorize/ship command ids %s %s" % (oid, auth_ids, ship_ids))
        approved = any(m.get("status") == "APPROVED" and m.get("commandId", "").endswith(":authorize:1")
                       for m in prep.get(oid, []))
        created = any(m.get("status") == "CREATED" and m.get("commandId", "").endswith(":ship:1")
                      for m in srep.get(oid, []))
        answered = any(m.get("commandId", "").endswith(":authorize:1") for m in prep.get(oid, []))
        if state == "FULFILLED":
            h.check(not voids and not cancels, "FULFILLED order %s was compensated: %s %s" % (oid, voids, cancels))
            h.check(approved and created, "FULFILLED order %s without an APPROVED authorize (%s) or CREATED shipment (%s)"
                    % (oid, approved, created))
        elif state == "REJECTED":
            h.check(not auth_ids and not ship_ids, "REJECTED order %s reached the participants" % oid)
        elif state == "CANCELLED":
            if auth_ids and (approved or not answered):
                h.check(voids and all(v["void"].get("authorizeCommandId") in auth_ids for v in voids),
                        "CANCELLED order %s: authorize %s (approved=%s) but no void naming it: %s" %
                        (oid, auth_ids, approved, voids))
            if created:
                h.check(cancels and all(c["cancel"].get("createCommandId") in ship_ids for c in cancels),
                        "CANCELLED order %s: shipment CREATED but no cancel naming it: %s" % (oid, cancels))


def random_seed():
    seed = os.environ.get("FFE_E2E_SEED")
    seed = int(seed) if seed else random.SystemRandom().randrange(1, 1 << 30)
    log("seed %d (FFE_E2E_SEED=%d reproduces the choices)" % (seed, seed))
    return seed


def check_no_oversell_now(h, http, skus):
    """A live check of invariant 1 while orders are in flight."""
    for sku in skus:
        status, s = http.sku(sku)
        if status == 200:
            h.check(0 <= s["reserved"] <= s["onHand"] and s["available"] >= 0,
                    "invariant 1 (live): sku %s %s" % (sku, s))


def summarize(final):
    """'FULFILLED 120, CANCELLED 30 (payment declined: card declined 12, ...), ...'"""
    states, reasons = {}, {}
    for o in final.values():
        states[o["state"]] = states.get(o["state"], 0) + 1
        if o["state"] != "FULFILLED":
            r = re.sub(r"sku-[0-9]+", "sku-N", o.get("reason", ""))
            r = re.sub(r"[0-9]+", "N", r)[:70]
            reasons.setdefault(o["state"], {})
            reasons[o["state"]][r] = reasons[o["state"]].get(r, 0) + 1
    parts = []
    for state in sorted(states):
        detail = ""
        if state in reasons:
            top = sorted(reasons[state].items(), key=lambda kv: -kv[1])[:5]
            detail = " (" + "; ".join("%s: %d" % kv for kv in top) + ")"
        parts.append("%s %d%s" % (state, states[state], detail))
    return ", ".join(parts)
