#!/usr/bin/env python3
"""E2E.BrokerUnreachableForAWhile: the broker goes away for ~10 s during load.

Why SIGSTOP and not a restart: `ffe broker` is librdkafka's mock cluster, memory only. A
restarted broker would come back empty (no topics, no messages, offsets from 0), which no
real Kafka cluster does after a restart, so a "restart" would test the mock, not ffe. A
paused process is what a real outage looks like from the clients' side: connections stay
open, requests time out, nothing is answered; after SIGCONT the same broker answers again
with its log intact. (docs/kafka.md "When the broker is unreachable"; tests/e2e/README.md.)

`ffe broker`, `ffe serve` and both simulators are separate processes; a kafka-python
producer sends orders at a steady rate; a few seconds in, the broker gets SIGSTOP, ~10 s
later SIGCONT. Checked: the engine keeps running and answering (/healthz 200 and order reads
over HTTP while the broker is paused), and afterwards every order completes with exactly one
outcome, every order terminal, no oversell, reserved 0, nothing in ff.dlq.

usage: broker_unreachable.py PATH/TO/ffe        (FFE_E2E_SEED, FFE_E2E_PAUSE_SECONDS override)
"""

import os
import random
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import e2e_common as e2e  # noqa: E402
from e2e_common import log, place_order, receive_stock, TestFailed

N_SKUS, STOCK = 20, 250
N_ORDERS, RATE = 1500, 150
PAUSE_AT = 3.0


def body(h):
    seed = e2e.random_seed()
    rng = random.Random(seed)
    pause_seconds = float(os.environ.get("FFE_E2E_PAUSE_SECONDS", "10"))
    broker = h.start_broker(partitions=4)
    B = broker.bootstrap
    serve = h.start_serve(B, h.dir + "/data")
    http = serve.http
    # The simulators keep librdkafka's default session timeout (45 s), as real consumers of a
    # real cluster would: a 10 s outage must not cost them their group membership.
    pay, ship = h.start_sims(B, session_timeout_ms=45000)
    h.warm_up(B, http)
    prod = e2e.producer(B)
    skus = ["sku-%d" % i for i in range(1, N_SKUS + 1)]
    errors = []

    received = {"sku-warmup": 1, "sku-post": 1000}
    for s in skus:
        prod.send("ff.inventory.commands", key=s.encode(), value=receive_stock(s, STOCK, "r-" + s))
        received[s] = STOCK
    prod.flush(60)

    orders = []
    for i in range(1, N_ORDERS + 1):
        oid = "o-%d" % i
        lines = [(s, rng.randint(1, 3)) for s in rng.sample(skus, rng.randint(1, 2))]
        roll = rng.random()
        kw = {}
        if roll < 0.08:
            kw["token"] = "tok_decline"
        elif roll < 0.11:
            kw["token"], kw["deadline_ms"] = "tok_silent", 4000
        elif roll < 0.16:
            kw["country"] = "XX"
        orders.append((oid, place_order(oid, lines, **kw)))
    progress = {"sent": 0, "done": False}

    def produce():
        start = time.monotonic()
        for i, (oid, value) in enumerate(orders):
            prod.send("ff.orders.commands", key=oid.encode(), value=value).add_errback(lambda e: errors.append(repr(e)))
            progress["sent"] = i + 1
            ahead = (i + 1) / RATE - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        prod.flush(180)
        progress["done"] = True

    t0 = time.monotonic()
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    while time.monotonic() - t0 < PAUSE_AT:
        time.sleep(0.1)

    # ---- the outage ---------------------------------------------------------------------------
    probe = None
    for oid, _ in orders[:50]:
        st, o = http.order(oid)
        if st == 200:
            probe = oid
            break
    log("SIGSTOP broker (pid %d) after %d orders sent, for %.0f s" % (broker.pid, progress["sent"], pause_seconds))
    broker.signal(signal.SIGSTOP)
    paused_at = time.monotonic()
    healthz, reads = [], []
    try:
        while time.monotonic() - paused_at < pause_seconds:
            healthz.append(http.status("/healthz"))
            if probe:
                reads.append(http.order(probe)[0])
            h.check_alive(serve, pay, ship)
            time.sleep(0.5)
    finally:
        broker.signal(signal.SIGCONT)
    log("SIGCONT broker after %.1f s; /healthz during the outage: %d answers, %s" %
        (time.monotonic() - paused_at, len(healthz), sorted(set(healthz))))
    h.check(healthz and all(s == 200 for s in healthz), "/healthz while the broker was paused: %s" % healthz)
    h.check(all(s == 200 for s in reads), "order reads over HTTP while the broker was paused: %s" % reads)

    producer.join(timeout=240)
    if not progress["done"]:
        raise TestFailed("the producer did not finish: %d of %d sent" % (progress["sent"], N_ORDERS))
    log("load sent in %.1f s" % (time.monotonic() - t0))

    # After the outage the engine works as before: plain orders on a well-stocked SKU, sent a
    # few seconds after SIGCONT, are all FULFILLED (none timed out, none lost).
    time.sleep(max(0.0, 3.0 - (time.monotonic() - paused_at - pause_seconds)))
    prod.send("ff.inventory.commands", key=b"sku-post", value=receive_stock("sku-post", 1000, "r-post"))
    prod.flush(30)
    e2e.wait_for_stock(http, "sku-post", 1000)
    post = ["o-post-%d" % i for i in range(1, 51)]
    for oid in post:
        prod.send("ff.orders.commands", key=oid.encode(), value=place_order(oid, [("sku-post", 2)])) \
            .add_errback(lambda e: errors.append(repr(e)))
        time.sleep(0.02)
    prod.flush(60)
    h.check(not errors, "kafka-python could not deliver %d messages: %s" % (len(errors), errors[:3]))

    order_ids = [o[0] for o in orders] + post + ["o-warmup"]
    outcomes = e2e.Outcomes(B)
    e2e.wait_for_outcomes(outcomes, http, order_ids, 75, lambda: h.check_alive(serve, pay, ship, broker),
                          after="after the load, within")
    e2e.wait_quiet(http, 40)
    outcomes.settle(1.0)

    final, repeats = e2e.check_outcomes_agree(h, outcomes, order_ids, allow_repeats=False)
    e2e.check_orders_over_http(h, http, final, spot_check=set(rng.sample(order_ids, 100)))
    h.check(all(final.get(o, {}).get("state") == "FULFILLED" for o in post),
            "orders placed after the outage did not all end FULFILLED: %s" %
            {o: (final.get(o, {}).get("state"), final.get(o, {}).get("reason")) for o in post
             if final.get(o, {}).get("state") != "FULFILLED"})
    sku_state = e2e.check_skus(h, http, skus + ["sku-warmup", "sku-post"], received, final)
    preq = e2e.TopicReader(B, "ff.payments.requests").read_to_end(60)
    prep = e2e.TopicReader(B, "ff.payments.replies").read_to_end(60)
    sreq = e2e.TopicReader(B, "ff.shipments.requests").read_to_end(60)
    srep = e2e.TopicReader(B, "ff.shipments.replies").read_to_end(60)
    e2e.check_compensations(h, final, preq, prep, sreq, srep)
    dlq = e2e.TopicReader(B, "ff.dlq").read_to_end()
    h.check(not dlq, "valid input reached ff.dlq: %s" %
            [(r.key, r.value[:80], e2e.headers_of(r).get("ff-error")) for r in dlq[:5]])
    h.check_alive(serve, pay, ship, broker)
    log("outcomes: " + e2e.summarize(final))
    states = {}
    for o in final.values():
        states[o["state"]] = states.get(o["state"], 0) + 1
    m = http.metrics()
    log("%d orders: %s; shipped %d units; egress failed calls %d, saga retries %d" %
        (len(final), states, sum(s["shippedTotal"] for s in sku_state.values()),
         m.get("ffe_egress_failed_calls_total", -1), m.get("ffe_saga_retries_total", -1)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    e2e.Harness("E2E.BrokerUnreachableForAWhile", sys.argv[1]).run(body)
