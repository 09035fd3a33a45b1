#!/usr/bin/env python3
"""E2E.SagaThroughKafka: the fulfillment saga end to end, from the outside.

`ffe broker`, `ffe serve`, `ffe sim payment` and `ffe sim shipping` run as separate
processes; this script is the producer, the outcome reader and the operator, with
kafka-python and the admin HTTP API. It checks every path of the saga (fulfilled, not enough
stock, declined, silent payment timing out, failed shipment, customer cancels), duplicate
commands and replies, bad input to ff.dlq, binary Protobuf input, and invariants 1-7 as far as
they are visible from outside: outcomes on ff.orders.outcomes, requests on the participants'
topics, entities and shard revisions over HTTP.

usage: saga_through_kafka.py PATH/TO/ffe
"""

import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import e2e_common as e2e  # noqa: E402
from e2e_common import log, place_order, cancel_order, receive_stock

STOCK = {"sku-a": 20, "sku-b": 10, "sku-c": 3}   # JSON receipts
PB_SKU, PB_QTY = "sku-p", 7                      # a binary Protobuf receipt
DEADLINE = 30000


def body(h):
    broker = h.start_broker(partitions=4)
    B = broker.bootstrap
    serve = h.start_serve(B, h.dir + "/data")
    http = serve.http
    pay, ship = h.start_sims(B)
    prod = e2e.producer(B)
    outcomes = e2e.Outcomes(B)

    def send(topic, key, value, headers=None):
        md = prod.send(topic, key=key.encode() if key is not None else None, value=value,
                       headers=headers or []).get(timeout=60)
        return md.partition, md.offset

    # ---- stock ----------------------------------------------------------------------------
    received = {}
    for sku, qty in STOCK.items():
        send("ff.inventory.commands", sku, receive_stock(sku, qty, "r-" + sku))
        received[sku] = qty
    # The same receipt twice (same bytes): counted once.
    send("ff.inventory.commands", "sku-a", receive_stock("sku-a", 20, "r-sku-a"))
    # Binary Protobuf input.
    send("ff.inventory.commands", PB_SKU, e2e.receive_stock_pb(PB_SKU, PB_QTY, "r-pb"), e2e.PROTOBUF)
    received[PB_SKU] = PB_QTY
    # An adjustment, twice (same adjustmentId): counted once.
    send("ff.inventory.commands", "sku-a", e2e.adjust_stock("sku-a", -2, "a-count-1"))
    send("ff.inventory.commands", "sku-a", e2e.adjust_stock("sku-a", -2, "a-count-1"))
    skus = sorted(received)
    e2e.wait_until(lambda: all(http.sku(s)[0] == 200 and http.sku(s)[1]["receivedTotal"] == received[s] for s in skus)
                   and http.sku("sku-a")[1]["adjustedOutTotal"] == 2, 30, "every receipt to show on /v1/skus")
    log("stock received: %s" % {s: http.sku(s)[1]["onHand"] for s in skus})

    # ---- orders ---------------------------------------------------------------------------
    expect = {}  # orderId -> (state, reason substring or None)

    def order(oid, lines, state, reason=None, **kw):
        kw.setdefault("deadline_ms", DEADLINE)
        send("ff.orders.commands", oid, place_order(oid, lines, **kw))
        expect[oid] = (state, reason)

    order("o-ok", [("sku-a", 2), ("sku-b", 1)], "FULFILLED")
    # Not enough stock on one line of two: REJECTED, nothing held (sku-a's line released).
    order("o-big", [("sku-a", 1), ("sku-c", 4)], "REJECTED", "sku-c")
    order("o-decline", [("sku-a", 1)], "CANCELLED", "declined", token="tok_decline")
    order("o-silent", [("sku-b", 2)], "CANCELLED", None, token="tok_silent", deadline_ms=3000)
    order("o-xx", [("sku-a", 1), ("sku-c", 1)], "CANCELLED", "XX", country="XX")
    # Placed and cancelled back to back: the cancel overtakes every participant round trip.
    order("o-cancel-fast", [("sku-b", 1)], "CANCELLED", None)
    send("ff.orders.commands", "o-cancel-fast", cancel_order("o-cancel-fast"))
    # Cancelled while its (silent) payment is outstanding: the authorize is voided.
    order("o-cancel-wait", [("sku-c", 1)], "CANCELLED", None, token="tok_silent", deadline_ms=60000)
    # The same PlaceOrder twice, same bytes: one order, one outcome.
    dup = place_order("o-dup", [("sku-a", 1)], deadline_ms=DEADLINE)
    send("ff.orders.commands", "o-dup", dup)
    send("ff.orders.commands", "o-dup", dup)
    expect["o-dup"] = ("FULFILLED", None)
    # A duplicate reply while the order waits for it: the payment stays silent, this script
    # answers the authorize itself, twice; the second copy must change nothing.
    order("o-dupmid", [("sku-b", 1)], "FULFILLED", None, token="tok_silent", deadline_ms=60000)
    # Binary Protobuf PlaceOrder.
    send("ff.orders.commands", "o-pb", e2e.place_order_pb("o-pb", [(PB_SKU, 3), ("sku-a", 1)], deadline_ms=DEADLINE),
         e2e.PROTOBUF)
    expect["o-pb"] = ("FULFILLED", None)
    # A key that differs from the payload's id changes nothing (routing by the payload).
    send("ff.orders.commands", "some-other-key", place_order("o-keyed", [("sku-b", 1)], deadline_ms=DEADLINE))
    expect["o-keyed"] = ("FULFILLED", None)

    # The same orderId again with another body: the first one counts (docs/kafka.md).
    send("ff.orders.commands", "o-dup", place_order("o-dup", [("sku-b", 5)], deadline_ms=DEADLINE))
    # A usable orderId that breaks a rule: a journaled REJECTED order with its outcome, not the DLQ.
    order("o-invalid", [("sku-a", 0)], "REJECTED", "qty")

    # ---- bad input: each to ff.dlq with its key, bytes and source ----------------------------
    bad = {}

    def bad_input(topic, key, value, reason):
        bad[key] = (topic, value, send(topic, key, value), reason)

    bad_input("ff.orders.commands", "k-garbage", b"\x00\xff{not json", "")
    bad_input("ff.orders.commands", "k-unknown", b'{"shipOrder": {"orderId": "o-9"}}', "unknown command")
    bad_input("ff.orders.commands", "k-empty-id", e2e.dumps({"placeOrder": {"orderId": "", "customerId": "c-1"}}),
              "orderId")
    bad_input("ff.orders.commands", "k-cancel-unknown", cancel_order("o-nobody"), "unknown order")
    bad_input("ff.payments.replies", "k-bad-reply", e2e.dumps({"commandId": "", "orderId": "o-ok", "status": "APPROVED"}),
              "commandId")
    bad_input("ff.inventory.commands", "k-pb-garbage", b"\x0a\xff\xff", "")
    # Kafka tells a null value (a tombstone) from an empty one, and an empty key from a null
    # one: the DLQ record keeps which it was.
    bad_input("ff.orders.commands", "k-tombstone", None, "empty")
    bad_input("ff.orders.commands", "", b"not json, under an empty key", "invalid JSON")
    # (the last one is JSON-typed garbage; a binary one too:)
    md = send("ff.orders.commands", "k-pb-bad", b"\x0a\xff\xff\x01", e2e.PROTOBUF)
    bad["k-pb-bad"] = ("ff.orders.commands", b"\x0a\xff\xff\x01", md, "protobuf")

    # ---- o-dupmid: answer its authorize twice, by hand ---------------------------------------
    e2e.wait_until(lambda: http.order("o-dupmid")[1] and http.order("o-dupmid")[1].get("state") == "AUTHORIZING",
                   30, "o-dupmid to wait for its payment")
    # A cancel of this open order whose reason breaks a rule (two lines): to ff.dlq with the
    # rule, and the order goes on (it ends FULFILLED below), never a silent drop.
    bad_input("ff.orders.commands", "k-cancel-bad-reason", cancel_order("o-dupmid", "changed\nmind"),
              "cancelOrder.reason")
    reply = e2e.dumps({"commandId": "o-dupmid:authorize:1", "orderId": "o-dupmid", "status": "APPROVED",
                       "paymentId": "p-by-hand", "reason": ""})
    send("ff.payments.replies", "o-dupmid", reply)
    send("ff.payments.replies", "o-dupmid", reply)
    # and a third copy in binary Protobuf
    send("ff.payments.replies", "o-dupmid", e2e.payment_reply_pb("o-dupmid:authorize:1", "o-dupmid", 1, "p-by-hand"),
         e2e.PROTOBUF)

    # ---- o-cancel-wait: cancel once it waits for its payment -------------------------------
    e2e.wait_until(lambda: http.order("o-cancel-wait")[1] and
                   http.order("o-cancel-wait")[1].get("state") == "AUTHORIZING", 30,
                   "o-cancel-wait to wait for its payment")
    send("ff.orders.commands", "o-cancel-wait", cancel_order("o-cancel-wait", "changed my mind"))

    # ---- every outcome ----------------------------------------------------------------------
    e2e.wait_for_outcomes(outcomes, http, expect, 60, lambda: h.check_alive(serve, pay, ship, broker),
                          after="within")
    # Quiet, then take the shards' revisions and digests.
    shards_before = e2e.wait_quiet(http, 30, still=1.5)
    outcomes.poll(0.5)
    n_outcome_records = sum(len(v) for v in outcomes.by_order.values())
    m0 = http.metrics()

    # ---- duplicates after terminal: nothing may change ---------------------------------------
    replies = e2e.TopicReader(B, "ff.payments.replies").read_to_end()
    ok_auth = [r for r in replies if r.key == b"o-ok" and b"o-ok:authorize:1" in r.value]
    sreplies = e2e.TopicReader(B, "ff.shipments.replies").read_to_end()
    ok_ship = [r for r in sreplies if r.key == b"o-ok" and b"o-ok:ship:1" in r.value]
    h.check(ok_auth and ok_ship, "no authorize/ship reply for o-ok on the replies topics")
    dups = 0
    for r in ok_auth[:1]:
        send("ff.payments.replies", "o-ok", r.value, list(r.headers or []))
        dups += 1
    for r in ok_ship[:1]:
        send("ff.shipments.replies", "o-ok", r.value, list(r.headers or []))
        dups += 1
    send("ff.orders.commands", "o-dup", dup)                                # a third copy
    send("ff.orders.commands", "o-ok", cancel_order("o-ok", "too late"))   # cancel after terminal
    send("ff.inventory.commands", "sku-a", receive_stock("sku-a", 20, "r-sku-a"))  # the receipt again
    n_sent = dups + 3
    submitted0 = m0.get("ffe_ingress_submitted_total", 0)
    e2e.wait_until(lambda: http.metrics().get("ffe_ingress_submitted_total", 0) >= submitted0 + n_sent, 30,
                   "the engine to take the %d duplicates" % n_sent)
    time.sleep(1.5)
    shards_after = http.json("/v1/shards")[1]
    h.check(shards_after == shards_before,
            "invariant 3: duplicates after terminal changed a shard (revision or digest):\n  before %s\n  after  %s"
            % (shards_before, shards_after))
    m1 = http.metrics()
    h.check(m1.get("ffe_late_replies_total", 0) >= m0.get("ffe_late_replies_total", 0) + dups,
            "late replies after terminal not counted: ffe_late_replies_total %s -> %s" %
            (m0.get("ffe_late_replies_total"), m1.get("ffe_late_replies_total")))
    outcomes.settle(1.5)
    h.check(sum(len(v) for v in outcomes.by_order.values()) == n_outcome_records,
            "duplicates after terminal published another outcome")

    # ---- outcomes: exactly one per order, the expected states --------------------------------
    final, _ = e2e.check_outcomes_agree(h, outcomes, expect, allow_repeats=False)
    for oid, (state, reason) in sorted(expect.items()):
        o = final.get(oid)
        if not o:
            continue
        h.check(o["state"] == state, "order %s: outcome %s (reason %r), expected %s" %
                (oid, o["state"], o.get("reason"), state))
        if reason:
            h.check(reason in o.get("reason", ""), "order %s: reason %r does not mention %r" %
                    (oid, o.get("reason"), reason))
        h.check(o.get("_ct") == "application/json", "order %s: outcome content-type %r" % (oid, o.get("_ct")))
    h.check(final.get("o-dupmid", {}).get("paymentId") == "p-by-hand",
            "o-dupmid: outcome paymentId %r, expected the hand-made reply's p-by-hand" %
            final.get("o-dupmid", {}).get("paymentId"))
    h.check(final.get("o-ok", {}).get("paymentId") == "p-o-ok" and final.get("o-ok", {}).get("shipmentId") == "s-o-ok",
            "o-ok: outcome %s" % final.get("o-ok"))
    h.check("timed out" in final.get("o-silent", {}).get("reason", "") or
            "deadline" in final.get("o-silent", {}).get("reason", ""),
            "o-silent: reason %r does not say it timed out" % final.get("o-silent", {}).get("reason"))

    # ---- HTTP: every order terminal, invariant 4; every SKU balanced --------------------------
    orders = e2e.check_orders_over_http(h, http, final)
    for oid, o in orders.items():
        if o["state"] == "FULFILLED":
            h.check(all(line["status"] == "COMMITTED" for line in o["lines"]), "order %s lines %s" % (oid, o["lines"]))
        elif o["state"] == "CANCELLED":
            h.check(all(line["status"] in ("RELEASED", "FAILED", "PENDING") for line in o["lines"]),
                    "cancelled order %s still holds a line: %s" % (oid, o["lines"]))
        else:
            h.check(all(line["status"] != "RESERVED" and line["status"] != "COMMITTED" for line in o["lines"]),
                    "rejected order %s holds a line: %s" % (oid, o["lines"]))
    h.check([line["qty"] for line in orders.get("o-dup", {}).get("lines", [])] == [1],
            "o-dup: the second PlaceOrder (another body) changed the order: %s" % orders.get("o-dup"))
    sku_state = e2e.check_skus(h, http, skus, received, final)
    h.check(sku_state.get("sku-a", {}).get("adjustedOutTotal") == 2,
            "sku-a: adjustedOutTotal %s after one adjustment of -2 sent twice" % sku_state.get("sku-a", {}).get("adjustedOutTotal"))
    log("skus at the end: %s" % {s: (v["onHand"], v["reserved"], v["shippedTotal"]) for s, v in sku_state.items()})

    # ---- the participants' topics: compensations ---------------------------------------------
    preq = e2e.TopicReader(B, "ff.payments.requests").read_to_end()
    sreq = e2e.TopicReader(B, "ff.shipments.requests").read_to_end()
    e2e.check_compensations(h, final, preq, replies, sreq, sreplies)
    voids = [e2e.json_of(r) for r in preq if r.key == b"o-silent" and b'"void"' in r.value]
    h.check(voids and all(v["void"]["authorizeCommandId"] == "o-silent:authorize:1" and v["commandId"] ==
                          "o-silent:void:1" for v in voids),
            "o-silent timed out: expected a void naming o-silent:authorize:1 on ff.payments.requests, got %s" % voids)
    voids = [e2e.json_of(r) for r in preq if r.key == b"o-xx" and b'"void"' in r.value]
    h.check(voids and all(v["void"]["authorizeCommandId"] == "o-xx:authorize:1" and v["void"]["paymentId"] == "p-o-xx"
                          for v in voids),
            "o-xx shipment failed: expected a void of p-o-xx on ff.payments.requests, got %s" % voids)
    voids = [e2e.json_of(r) for r in preq if r.key == b"o-cancel-wait" and b'"void"' in r.value]
    h.check(voids, "o-cancel-wait cancelled while authorizing: no void on ff.payments.requests")
    h.check(not [r for r in preq if r.key == b"o-big"], "o-big was REJECTED but reached the payment service")
    h.check(all(e2e.headers_of(r).get("content-type") == "application/json" for r in preq + sreq),
            "a request without content-type application/json")

    # ---- the DLQ ------------------------------------------------------------------------------
    dlq = e2e.TopicReader(B, "ff.dlq").read_to_end()
    by_key = {}
    for r in dlq:
        by_key.setdefault(r.key.decode("utf-8", "replace") if r.key is not None else None, []).append(r)
    h.check(set(by_key) == set(bad), "ff.dlq keys %s, expected exactly %s" % (sorted(map(str, by_key)), sorted(bad)))
    for key, (topic, value, (partition, offset), reason) in sorted(bad.items()):
        records = by_key.get(key, [])
        if not h.check(records, "bad input %s (%s/%d@%d) is not on ff.dlq" % (key, topic, partition, offset)):
            continue
        h.check(len(records) == 1, "bad input %s is %d times on ff.dlq (no crash here)" % (key, len(records)))
        r = records[0]
        hd = e2e.headers_of(r)
        h.check(r.value == value, "dlq %s: bytes %r, sent %r" % (key, r.value, value))
        h.check(hd.get("ff-source-topic") == topic and hd.get("ff-source-partition") == str(partition) and
                hd.get("ff-source-offset") == str(offset),
                "dlq %s: source headers %s, sent to %s/%d@%d" % (key, hd, topic, partition, offset))
        h.check(hd.get("ff-error"), "dlq %s: no ff-error header: %s" % (key, hd))
        h.check(reason.lower() in (hd.get("ff-error") or "").lower(),
                "dlq %s: ff-error %r does not mention %r" % (key, hd.get("ff-error"), reason))
        log("dlq %-16s ff-error: %s" % (key, hd.get("ff-error")))

    # ---- the processes -------------------------------------------------------------------------
    h.check_alive(serve, pay, ship, broker)
    h.check(http.status("/healthz") == 200, "/healthz is not 200")
    log("%d orders, %d outcome records, %d DLQ records; %s" %
        (len(expect), sum(len(v) for v in outcomes.by_order.values()), len(dlq),
         {o: final[o]["state"] for o in sorted(final)}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    e2e.Harness("E2E.SagaThroughKafka", sys.argv[1]).run(body)
