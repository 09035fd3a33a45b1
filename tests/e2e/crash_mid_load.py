#!/usr/bin/env python3
"""E2ECrash.EngineKilledMidLoadLosesAndDuplicatesNothing (`ctest -R Crash`).

`ffe broker` and both simulators run as separate processes and outlive the engine; a
kafka-python producer sends a few thousand orders over many SKUs with limited stock (plus
restocking receipts during the load) while `ffe serve` is SIGKILLed at random moments, 2-3
times, and restarted each time on the same data dir with the same --brokers. At the end:

- every order has at least one outcome, and all outcomes of one order agree (a repeat after
  a crash carries the same orderId + revision + state); HTTP agrees with them, every order is
  terminal (invariant 5) and unchanged after its terminal revision (invariant 4, sampled);
- no SKU oversold (invariant 1), checked live during the load and at the end: reserved == 0,
  onHand == received - shipped, receivedTotal == the receipts sent (each exactly once), and
  shippedTotal == the units of the FULFILLED outcomes (nothing committed twice or lost);
- the participants' topics: a FULFILLED order was never compensated, a CANCELLED one that
  was authorized got its void; one authorize and one ship command id per order;
- bad input mixed into the load (garbage, cancels of unknown orders) reaches ff.dlq at least
  once, each from one source position, with its original bytes; nothing valid does; the
  same PlaceOrder sent twice and repeated receipts change nothing;
- replay (invariant 8): `ffe replay --json` read-only beside the running engine gives each
  shard's digest of /v1/shards/{s}?revision=R; then the engine is SIGKILLed once more and
  `ffe replay` on the stopped data dir gives, for every shard, the revision and digest
  /v1/shards reported just before the kill.

usage: crash_mid_load.py PATH/TO/ffe        (FFE_E2E_SEED, FFE_E2E_ORDERS, FFE_E2E_KILLS, FFE_E2E_RATE override)
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import e2e_common as e2e  # noqa: E402
from e2e_common import log, place_order, cancel_order, receive_stock, TestFailed

N_SKUS = 40
FIRST_STOCK, RESTOCK = 60, 40       # per SKU: one receipt up front, two more during the load
RATE = int(os.environ.get("FFE_E2E_RATE", "250"))  # orders per second
DEADLINE, SILENT_DEADLINE = 20000, 4000


def replay(h, data, *flags):
    """`ffe replay --data-dir DATA --json FLAGS`: {shard: {"revision", "events", "digest"}}."""
    run = subprocess.run([h.ffe, "replay", "--data-dir", data, "--json"] + list(flags),
                         capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise TestFailed("ffe replay %s: exit %d: %s" % (" ".join(flags), run.returncode, run.stderr.strip()))
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    return {line["shard"]: line for line in lines}


def check_replay(h, serve, data):
    """Invariant 8 after the crashes: replay's digests equal the live ones, read-only beside
    the running engine and on the data dir of an engine killed with SIGKILL."""
    http = serve.http
    running = replay(h, data)
    h.check(len(running) > 0, "ffe replay printed no shard")
    for shard, line in sorted(running.items()):
        status, live = http.json("/v1/shards/%d?revision=%d" % (shard, line["revision"]))
        h.check(status == 200 and live.get("digest") == line["digest"],
                "shard %d at revision %d: replay (read-only, engine running) digest %s, /v1/shards says %s %s" %
                (shard, line["revision"], line["digest"], status, live))
    before = {s["shard"]: s for s in http.json("/v1/shards")[1]}
    h.check(sorted(before) == sorted(running), "shards: /v1/shards %s, replay %s" % (sorted(before), sorted(running)))
    serve.signal(signal.SIGKILL)
    serve.popen.wait(30)
    stopped = replay(h, data)
    for shard, live in sorted(before.items()):
        line = stopped.get(shard)
        if not h.check(line is not None, "shard %d: no replay line after the kill" % shard):
            continue
        h.check(line["revision"] >= live["revision"],
                "shard %d: revision %d before the kill, %d replayed after it (acknowledged commits lost)" %
                (shard, live["revision"], line["revision"]))
        if line["revision"] != live["revision"]:  # committed between the read and the kill
            line = replay(h, data, "--shard", str(shard), "--to-revision", str(live["revision"]))[shard]
        h.check(line["digest"] == live["digest"],
                "shard %d at revision %d: replay after SIGKILL gives digest %s, /v1/shards said %s before it" %
                (shard, live["revision"], line["digest"], live["digest"]))
    log("replay: %d shards, %d events, digests equal to /v1/shards (read-only while running, and after SIGKILL)" %
        (len(stopped), sum(line["events"] for line in stopped.values())))


def body(h):
    seed = e2e.random_seed()
    rng = random.Random(seed)
    n_orders = int(os.environ.get("FFE_E2E_ORDERS", "3000"))
    n_kills = int(os.environ.get("FFE_E2E_KILLS", str(rng.choice([2, 3, 3]))))
    broker = h.start_broker(partitions=4)
    B = broker.bootstrap
    data = h.dir + "/data"
    state = {"serve": h.start_serve(B, data)}
    pay, ship = h.start_sims(B)
    h.warm_up(B, state["serve"].http)
    prod = e2e.producer(B)
    skus = ["sku-%d" % i for i in range(1, N_SKUS + 1)]

    # The load, fixed up front from the seed.
    orders, received = [], {}
    for i in range(1, n_orders + 1):
        oid = "o-%d" % i
        lines = [(s, rng.randint(1, 3)) for s in rng.sample(skus, rng.randint(1, 3))]
        roll = rng.random()
        kw = dict(deadline_ms=DEADLINE, customer="c-%d" % rng.randint(1, 100))
        cancel = False
        twice = rng.random() < 0.03     # the same PlaceOrder twice: one order
        if roll < 0.08:
            kw["token"] = "tok_decline"
        elif roll < 0.12:
            kw["token"], kw["deadline_ms"] = "tok_silent", SILENT_DEADLINE
        elif roll < 0.18:
            kw["country"] = "XX"
        elif roll < 0.22:
            cancel = True
        orders.append((oid, place_order(oid, lines, **kw), cancel, twice))

    errors = []

    def on_error(e):
        errors.append(repr(e))

    def send(topic, key, value):
        prod.send(topic, key=key.encode(), value=value).add_errback(on_error)

    for s in skus:
        send("ff.inventory.commands", s, receive_stock(s, FIRST_STOCK, "r-%s-0" % s))
        received[s] = FIRST_STOCK
    prod.flush(60)

    progress = {"sent": 0, "done": False}
    bad = {}   # key -> bytes: bad input mixed into the load, each must reach ff.dlq (at least once)

    def send_bad(key, value):
        bad[key] = value
        send("ff.orders.commands", key, value)

    def produce():
        start = time.monotonic()
        restock_at = {n_orders // 3: 1, 2 * n_orders // 3: 2}
        for i, (oid, value, cancel, twice) in enumerate(orders):
            if i in restock_at:
                for s in skus:
                    send("ff.inventory.commands", s, receive_stock(s, RESTOCK, "r-%s-%d" % (s, restock_at[i])))
                    received[s] += RESTOCK
                # and the first receipt of every SKU once more: a duplicate, applied never
                for s in skus:
                    send("ff.inventory.commands", s, receive_stock(s, FIRST_STOCK, "r-%s-0" % s))
            send("ff.orders.commands", oid, value)
            if twice:
                send("ff.orders.commands", oid, value)
            if cancel:
                send("ff.orders.commands", oid, cancel_order(oid))
            if i % 250 == 125:
                send_bad("k-garbage-%d" % i, b"\x00garbage %d" % i)
                send_bad("k-cancel-unknown-%d" % i, cancel_order("o-nobody-%d" % i))
            progress["sent"] = i + 1
            ahead = (i + 1) / RATE - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        prod.flush(120)
        progress["done"] = True

    load_seconds = n_orders / RATE
    kill_at = sorted(rng.uniform(1.5, load_seconds - 1.0) for _ in range(n_kills))
    log("load: %d orders over %d SKUs at %d/s (~%.0f s); SIGKILL of ffe serve at about %s s" %
        (n_orders, N_SKUS, RATE, load_seconds, ["%.1f" % k for k in kill_at]))
    producer = threading.Thread(target=produce, daemon=True)
    load_start = time.monotonic()
    producer.start()

    kills = []
    not_before = 0.0
    for at in kill_at:
        # Each kill lands mid-load, and a moment after the previous start at the soonest.
        while time.monotonic() - load_start < max(at, not_before):
            time.sleep(0.1)
            h.check_alive(state["serve"], pay, ship, broker)
            e2e.check_no_oversell_now(h, state["serve"].http, rng.sample(skus, 2))
        serve = state["serve"]
        sent = progress["sent"]
        serve.signal(signal.SIGKILL)
        serve.popen.wait(30)
        h.check(serve.popen.returncode == -signal.SIGKILL, "ffe serve exit %s after SIGKILL" % serve.popen.returncode)
        kills.append(sent)
        log("SIGKILL ffe serve (pid %d) after %d of %d orders sent; restarting on the same data dir" %
            (serve.pid, sent, n_orders))
        t = time.monotonic()
        state["serve"] = h.start_serve(B, data)
        log("restarted in %.1f s" % (time.monotonic() - t))
        not_before = time.monotonic() - load_start + rng.uniform(0.5, 1.5)
    producer.join(timeout=load_seconds + 120)
    if not progress["done"]:
        raise TestFailed("the producer did not finish: %d of %d sent" % (progress["sent"], n_orders))
    h.check(not errors, "kafka-python could not deliver %d messages: %s" % (len(errors), errors[:3]))
    log("load sent in %.1f s; %d kills" % (time.monotonic() - load_start, len(kills)))
    h.check(len(kills) >= 2, "only %d kills happened" % len(kills))

    serve = state["serve"]
    http = serve.http
    order_ids = [o[0] for o in orders] + ["o-warmup"]
    received["sku-warmup"] = 1
    outcomes = e2e.Outcomes(B)
    e2e.wait_for_outcomes(outcomes, http, order_ids, 75, lambda: h.check_alive(serve, pay, ship, broker))
    e2e.wait_quiet(http, 40)
    outcomes.settle(1.0)

    final, repeats = e2e.check_outcomes_agree(h, outcomes, order_ids, allow_repeats=True)
    spot = set(rng.sample(order_ids, min(150, len(order_ids))))
    e2e.check_orders_over_http(h, http, final, spot_check=spot)
    sku_state = e2e.check_skus(h, http, skus + ["sku-warmup"], received, final)
    preq = e2e.TopicReader(B, "ff.payments.requests").read_to_end(60)
    prep = e2e.TopicReader(B, "ff.payments.replies").read_to_end(60)
    sreq = e2e.TopicReader(B, "ff.shipments.requests").read_to_end(60)
    srep = e2e.TopicReader(B, "ff.shipments.replies").read_to_end(60)
    e2e.check_compensations(h, final, preq, prep, sreq, srep)
    # ff.dlq: exactly the bad input, each at least once (at-least-once across crashes), every
    # copy with the original bytes and the same source position.
    dlq = e2e.TopicReader(B, "ff.dlq").read_to_end()
    copies = {}
    for r in dlq:
        key = r.key.decode("utf-8", "replace") if r.key is not None else None
        if not h.check(key in bad, "valid input reached ff.dlq: %r %r %s" % (r.key, r.value[:80], e2e.headers_of(r))):
            continue
        hd = e2e.headers_of(r)
        h.check(r.value == bad[key] and hd.get("ff-error"), "dlq %s: %r %s" % (key, r.value, hd))
        copies.setdefault(key, set()).add((hd.get("ff-source-topic"), hd.get("ff-source-partition"),
                                           hd.get("ff-source-offset")))
    for key in sorted(bad):
        h.check(len(copies.get(key, ())) == 1, "bad input %s: on ff.dlq from %s source positions %s (expected one)" %
                (key, len(copies.get(key, ())), sorted(copies.get(key, ()))))
    log("ff.dlq: %d records for %d bad inputs" % (len(dlq), len(bad)))
    h.check_alive(serve, pay, ship, broker)

    log("outcomes: " + e2e.summarize(final))
    states = {}
    for o in final.values():
        states[o["state"]] = states.get(o["state"], 0) + 1
    log("%d orders: %s; %d with a repeated outcome record; shipped %d of %d units received" %
        (len(final), states, repeats, sum(s["shippedTotal"] for s in sku_state.values()), sum(received.values())))
    h.check(states.get("FULFILLED", 0) > 0 and states.get("REJECTED", 0) > 0 and states.get("CANCELLED", 0) > 0,
            "the load did not exercise every outcome: %s" % states)
    check_replay(h, serve, data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    e2e.Harness("E2ECrash.EngineKilledMidLoadLosesAndDuplicatesNothing", sys.argv[1]).run(body)
