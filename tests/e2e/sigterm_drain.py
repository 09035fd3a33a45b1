#!/usr/bin/env python3
"""E2E.SigtermDrainsAndExitsZero: SIGTERM under light load, then a restart that continues.

`ffe broker`, `ffe serve` and both simulators are separate processes. A first batch of orders
completes; then, while a kafka-python producer sends a light stream of orders, `ffe serve`
gets SIGTERM. Checked: it prints "ffe: SIGTERM: draining and stopping" and "ffe: stopped" and
exits 0 within a few seconds. Restarted on the same data dir with the same --brokers it
continues: the first batch answers on HTTP exactly as before the stop (same state, revision,
terminalRevision), every order of the stream ends with exactly one outcome (a clean stop is
not a crash: no repeats), nothing oversold, reserved 0, nothing in ff.dlq. Last, SIGTERM
during a start that waits for a broker that does not answer ends it within 3 s, exit 0.

usage: sigterm_drain.py PATH/TO/ffe
"""

import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import e2e_common as e2e  # noqa: E402
from e2e_common import log, place_order, receive_stock, TestFailed

SKUS = ["sku-%d" % i for i in range(1, 6)]
STOCK = 1000
EXIT_WITHIN = 10.0   # seconds from SIGTERM to exit: "a few seconds" (the drain's own bounds sum to ~40 s)


def body(h):
    broker = h.start_broker(partitions=4)
    B = broker.bootstrap
    data = h.dir + "/data"
    serve = h.start_serve(B, data)
    http = serve.http
    pay, ship = h.start_sims(B)
    h.warm_up(B, http)
    prod = e2e.producer(B)
    received = {"sku-warmup": 1}
    for s in SKUS:
        prod.send("ff.inventory.commands", key=s.encode(), value=receive_stock(s, STOCK, "r-" + s))
        received[s] = STOCK

    def order_value(i):
        oid = "o-%d" % i
        lines = [(SKUS[i % 5], 1 + i % 3), (SKUS[(i + 2) % 5], 1)]
        token = "tok_decline" if i % 10 == 3 else "tok_visa"
        return oid, place_order(oid, lines, token=token)

    # ---- a first batch, completed before the stop ------------------------------------------
    first = []
    for i in range(1, 101):
        oid, value = order_value(i)
        prod.send("ff.orders.commands", key=oid.encode(), value=value)
        first.append(oid)
    prod.flush(60)
    outcomes = e2e.Outcomes(B)
    missing = outcomes.wait_for(first, 60)
    if missing:
        raise TestFailed("first batch: no outcome for %s" % sorted(missing)[:10])
    before = {oid: http.order(oid)[1] for oid in first}
    log("first batch: %d orders ended (%s)" % (len(first), e2e.summarize({o: outcomes.by_order[o][0] for o in first})))

    # ---- a light stream, and SIGTERM in the middle of it ------------------------------------
    stream = []
    errors = []
    done = threading.Event()

    def produce():
        for i in range(101, 401):          # 300 orders at ~50/s
            oid, value = order_value(i)
            prod.send("ff.orders.commands", key=oid.encode(), value=value).add_errback(lambda e: errors.append(repr(e)))
            stream.append(oid)
            time.sleep(0.02)
        prod.flush(120)
        done.set()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    time.sleep(2.0)
    log("SIGTERM ffe serve (pid %d) after %d orders of the stream" % (serve.pid, len(stream)))
    t = time.monotonic()
    serve.signal(signal.SIGTERM)
    try:
        serve.popen.wait(timeout=60)
    except Exception:
        raise TestFailed("ffe serve did not exit within 60 s of SIGTERM")
    took = time.monotonic() - t
    log("ffe serve exited with %s after %.2f s" % (serve.popen.returncode, took))
    h.check(serve.popen.returncode == 0, "ffe serve exit code %s after SIGTERM, expected 0" % serve.popen.returncode)
    h.check(took <= EXIT_WITHIN, "ffe serve took %.1f s to exit after SIGTERM (limit %.0f s)" % (took, EXIT_WITHIN))
    out = serve.output()
    h.check("ffe: SIGTERM: draining and stopping" in out and out.rstrip().endswith("ffe: stopped"),
            "ffe serve's last lines are not the drain and stop lines:\n%s" % e2e.tail(out, 8))
    h.check(http.status("/healthz") == 0, "the admin HTTP server still answers after exit")

    # The stream goes on while the engine is down; then restart on the same data dir.
    time.sleep(1.0)
    serve = h.start_serve(B, data)
    http = serve.http
    if not done.wait(120):
        raise TestFailed("the producer did not finish")
    h.check(not errors, "kafka-python could not deliver %d messages: %s" % (len(errors), errors[:3]))

    # ---- after the restart -------------------------------------------------------------------
    for oid in first:
        st, o = http.order(oid)
        h.check(st == 200 and e2e.strip(o, "asOf") == e2e.strip(before[oid], "asOf"),
                "order %s placed before the stop reads differently after the restart:\n  before %s\n  after  %s %s" %
                (oid, before[oid], st, o))
    order_ids = first + stream + ["o-warmup"]
    e2e.wait_for_outcomes(outcomes, http, order_ids, 60, lambda: h.check_alive(serve, pay, ship, broker),
                          after="after the restart, within")
    e2e.wait_quiet(http, 30)
    outcomes.settle(1.0)
    final, repeats = e2e.check_outcomes_agree(h, outcomes, order_ids, allow_repeats=False)
    e2e.check_orders_over_http(h, http, final, spot_check=set(first[:20] + stream[:20]))
    e2e.check_skus(h, http, SKUS + ["sku-warmup"], received, final)
    dlq = e2e.TopicReader(B, "ff.dlq").read_to_end()
    h.check(not dlq, "valid input reached ff.dlq: %s" % [(r.key, e2e.headers_of(r).get("ff-error")) for r in dlq[:5]])
    log("outcomes: " + e2e.summarize(final))

    # And a second SIGTERM, now idle, is just as clean.
    t = time.monotonic()
    serve.signal(signal.SIGTERM)
    serve.popen.wait(timeout=60)
    log("idle SIGTERM: exit %s after %.2f s" % (serve.popen.returncode, time.monotonic() - t))
    h.check(serve.popen.returncode == 0, "idle ffe serve exit code %s after SIGTERM" % serve.popen.returncode)

    # SIGTERM during a start that waits for a broker that does not answer (its metadata wait
    # runs 10-30 s): the start gives up at once, exit 0. Once on this data dir (recovered,
    # then waiting to make the topics), once on a new one (waiting for the partition count,
    # before the data dir is made).
    dead = "127.0.0.1:%d" % e2e.unused_port()
    for label, where in (("existing", data), ("new", h.dir + "/never-made")):
        proc = h.spawn("serve-" + label, [h.ffe, "serve", "--brokers", dead, "--data-dir", where, "--http", "127.0.0.1:0"])
        if label == "existing":
            proc.wait_for(r"ffe: CDC into ", 30)
        time.sleep(1.0)
        t = time.monotonic()
        proc.signal(signal.SIGTERM)
        proc.popen.wait(timeout=60)
        took = time.monotonic() - t
        log("SIGTERM during the start (%s data dir, broker %s): exit %s after %.2f s" %
            (label, dead, proc.popen.returncode, took))
        h.check(proc.popen.returncode == 0 and took < 3.0,
                "SIGTERM during the start (%s data dir) gave exit %s after %.1f s; wanted 0 within 3 s:\n%s" %
                (label, proc.popen.returncode, took, e2e.tail(proc.output())))
        h.check("ffe: stopped" in proc.output(), "no 'ffe: stopped' after SIGTERM during the start:\n%s" %
                e2e.tail(proc.output()))
    h.check(not os.path.exists(h.dir + "/never-made"), "a start stopped before it knew the shard count made the data dir")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    e2e.Harness("E2E.SigtermDrainsAndExitsZero", sys.argv[1]).run(body)
