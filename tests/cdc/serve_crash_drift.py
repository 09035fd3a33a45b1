#!/usr/bin/env python3
"""CdcCrash.ServeKilledThenDriftIsClean (`ctest -R Crash`): `ffe serve` keeps the analytics
tables in sync BY DEFAULT (sqlite:<data-dir>/analytics.db, no --analytics flag), through a
kill -9.

`ffe serve --cdc-topic ff.cdc` also publishes Debezium-style change envelopes; `ffe broker` and both simulators run as separate processes (tests/e2e/e2e_common.py); a
kafka-python producer sends orders while `ffe serve` is SIGKILLed once mid-load and
restarted on the same data dir. When every order has its outcome and the engine is quiet:
- /metrics shows ffe_cdc_lag_revisions{shard} 0 for every shard (CDC caught up),
  ffe_cdc_rows_applied_total{table="orders"} > 0;
- after a clean stop (SIGTERM), `ffe drift --data-dir DIR` exits 0 and prints one JSON line
  per shard with "drift":0 whose orders add up to every order sent;
- the orders table (read with Python's sqlite3) holds each order once, in the state its
  outcome announced;
- ff.cdc holds a create envelope for every order first, and its latest envelope carries the
  table's state (repeats after the kill allowed: at least once).

usage: serve_crash_drift.py PATH/TO/ffe        (FFE_E2E_SEED overrides the seed)
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import e2e_common as e2e  # noqa: E402
from e2e_common import log, place_order, receive_stock, TestFailed  # noqa: E402

N_ORDERS = 600
RATE = 200  # orders per second
SHARDS = 2


def body(h):
    rng = random.Random(e2e.random_seed())
    broker = h.start_broker(partitions=SHARDS)
    B = broker.bootstrap
    data = h.dir + "/data"
    serve = h.start_serve(B, data, extra=["--cdc-topic", "ff.cdc"])
    pay, ship = h.start_sims(B)
    h.warm_up(B, serve.http)
    prod = e2e.producer(B)
    skus = ["sku-%d" % i for i in range(1, 11)]
    for s in skus:
        prod.send("ff.inventory.commands", key=s.encode(), value=receive_stock(s, 100000, "r-" + s))
    prod.flush(30)
    for s in skus:  # every order must end FULFILLED (or declined): none may beat its stock
        e2e.wait_for_stock(serve.http, s, 100000)
    order_ids = []
    kill_at = rng.randint(N_ORDERS // 4, N_ORDERS // 2)
    start = time.monotonic()
    for i in range(N_ORDERS):
        oid = "o-%d" % i
        token = "tok_decline" if i % 9 == 4 else "tok_visa"
        prod.send("ff.orders.commands", key=oid.encode(),
                  value=place_order(oid, [(rng.choice(skus), rng.randint(1, 3))], token=token))
        order_ids.append(oid)
        if i == kill_at:
            prod.flush(30)
            serve.signal(signal.SIGKILL)
            serve.popen.wait(30)
            h.check(serve.popen.returncode == -signal.SIGKILL, "ffe serve exit %s" % serve.popen.returncode)
            log("SIGKILL ffe serve after %d orders; restarting" % (i + 1))
            serve = h.start_serve(B, data, extra=["--cdc-topic", "ff.cdc"])
        ahead = (i + 1) / RATE - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    prod.flush(60)
    order_ids.append("o-warmup")
    outcomes = e2e.Outcomes(B)
    missing = outcomes.wait_for(order_ids, 60, on_idle=lambda: h.check_alive(serve, pay, ship, broker))
    if missing:
        raise TestFailed("%d orders without an outcome, e.g. %s" % (len(missing), sorted(missing)[:5]))
    outcomes.settle(1.0)

    def caught_up():
        m = serve.http.metrics()
        lags = [v for k, v in m.items() if k.startswith("ffe_cdc_lag_revisions{")]
        return m if len(lags) == SHARDS and all(v == 0 for v in lags) else None
    m = e2e.wait_until(caught_up, 30, "CDC to catch up (ffe_cdc_lag_revisions 0 on every shard)", interval=0.2)
    h.check(m.get('ffe_cdc_rows_applied_total{table="orders"}', 0) > 0, "no order rows applied: %s" %
            {k: v for k, v in m.items() if k.startswith("ffe_cdc")})
    log("CDC caught up: %s" % {k: v for k, v in m.items() if k.startswith("ffe_cdc")})

    serve.signal(signal.SIGTERM)
    serve.popen.wait(60)
    h.check(serve.popen.returncode == 0, "ffe serve exit %s after SIGTERM" % serve.popen.returncode)

    drift = subprocess.run([h.ffe, "drift", "--data-dir", data], capture_output=True, text=True, timeout=120)
    log("ffe drift: exit %d\n%s%s" % (drift.returncode, drift.stdout, drift.stderr[-2000:]))
    h.check(drift.returncode == 0, "ffe drift exit %d: %s" % (drift.returncode, drift.stderr[-2000:]))
    lines = [json.loads(line) for line in drift.stdout.splitlines() if line.startswith("{")]
    h.check(len(lines) == SHARDS, "ffe drift printed %d shard lines" % len(lines))
    h.check(all(line["drift"] == 0 for line in lines), "drift: %s" % lines)
    h.check(sum(line["orders"] for line in lines) == len(order_ids),
            "drift compared %d orders, %d were sent" % (sum(line["orders"] for line in lines), len(order_ids)))

    db = sqlite3.connect(data + "/analytics.db")
    rows = db.execute("SELECT order_id, state, terminal FROM orders").fetchall()
    ids = [r[0] for r in rows]
    h.check(len(ids) == len(set(ids)) == len(order_ids), "orders table: %d rows, %d distinct, %d sent" %
            (len(ids), len(set(ids)), len(order_ids)))
    h.check(all(r[2] for r in rows), "non-terminal rows: %s" % [r for r in rows if not r[2]][:5])
    states = {r[0]: r[1] for r in rows}
    declined = [oid for i, oid in enumerate(order_ids[:-1]) if i % 9 == 4]
    h.check(all(states.get(oid) == "CANCELLED" for oid in declined),
            "declined orders not CANCELLED in the table: %s" %
            [(oid, states.get(oid)) for oid in declined if states.get(oid) != "CANCELLED"][:5])
    h.check(sum(1 for s in states.values() if s == "FULFILLED") == len(order_ids) - len(declined),
            "FULFILLED rows: %d" % sum(1 for s in states.values() if s == "FULFILLED"))
    checkpoints = db.execute("SELECT shard, revision FROM cdc_checkpoint ORDER BY shard").fetchall()
    h.check([c[0] for c in checkpoints] == list(range(SHARDS)), "cdc_checkpoint rows: %s" % checkpoints)
    log("tables: %d orders, checkpoints %s" % (len(rows), checkpoints))

    # The change envelopes (--cdc-topic): at least once, so repeats after the kill are fine;
    # every order's first is a create, and its last says what the table says.
    envelopes = e2e.TopicReader(B, "ff.cdc").read_to_end(60)
    first, last = {}, {}
    for r in envelopes:
        e = json.loads(r.value)
        if e["source"]["table"] != "orders":
            continue
        oid = e["after"]["order_id"]
        h.check(r.key.decode() == "order/" + oid, "envelope key %r for %s" % (r.key, oid))
        first.setdefault(oid, e)
        if oid not in last or e["after"]["revision"] >= last[oid]["after"]["revision"]:
            last[oid] = e
    h.check(set(last) == set(order_ids), "envelopes for %d orders of %d" % (len(last), len(order_ids)))
    h.check(all(e["op"] == "c" and e["before"] is None for e in first.values()),
            "a first envelope that is not a create: %s" % [e for e in first.values() if e["op"] != "c"][:2])
    h.check(all(last[o]["after"]["state"] == states.get(o) for o in last),
            "envelope state != table state: %s" %
            [(o, last[o]["after"]["state"], states.get(o)) for o in last if last[o]["after"]["state"] != states.get(o)][:5])
    log("ff.cdc: %d envelopes" % len(envelopes))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    e2e.Harness("CdcCrash.ServeKilledThenDriftIsClean", sys.argv[1]).run(body)
