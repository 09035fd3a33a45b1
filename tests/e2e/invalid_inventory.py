#!/usr/bin/env python3
"""E2E.InvalidInventoryCommandsAreNotDroppedSilently: invariant 6 for ff.inventory.commands.

ARCHITECTURE.md, invariant 6: "Bad input never crashes ffe and is never dropped silently: it
goes to ff.dlq with a reason, or is answered with a REJECTED outcome." An order that breaks a
rule is answered (a REJECTED outcome); an inventory command has no outcome topic, so the only
place a producer can learn that its ReceiveStock or AdjustStock broke a contract rule
(docs/contracts.md "Validation rules": ReceiveStock qty 1..1,000,000,000; AdjustStock delta
non-zero) is ff.dlq, with the original key, bytes and the ff-error / ff-source-* headers.

`ffe broker` and `ffe serve` run as separate processes; kafka-python sends the commands.
Checked: each rule-breaking inventory command is on ff.dlq with its reason, changes nothing,
and a valid receipt after them is still applied. A refusal by the domain (an adjustment that
would take onHand below zero) is reported in the log, not checked: the contract does not say
how it is answered.

usage: invalid_inventory.py PATH/TO/ffe
"""

import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import e2e_common as e2e  # noqa: E402
from e2e_common import log, receive_stock


def body(h):
    broker = h.start_broker(partitions=4)
    B = broker.bootstrap
    serve = h.start_serve(B, h.dir + "/data")
    http = serve.http
    prod = e2e.producer(B)

    def send(key, value):
        md = prod.send("ff.inventory.commands", key=key.encode(), value=value).get(timeout=60)
        return md.partition, md.offset

    send("sku-a", receive_stock("sku-a", 5, "r-1"))
    e2e.wait_until(lambda: http.sku("sku-a")[0] == 200, 30, "sku-a to exist")
    submitted0 = http.metrics().get("ffe_ingress_submitted_total", 0)
    rejected0 = http.metrics().get("ffe_commands_rejected_total", 0)

    bad = {
        "k-qty-zero": (receive_stock("sku-a", 0, "r-2"), "qty"),
        "k-qty-negative": (receive_stock("sku-a", -4, "r-3"), "qty"),
        "k-delta-zero": (e2e.adjust_stock("sku-a", 0, "a-1"), "delta"),
    }
    sent = {key: send(key, value) for key, (value, _) in bad.items()}
    refusal = send("k-below-zero", e2e.adjust_stock("sku-a", -100, "a-2"))  # the domain's refusal
    send("sku-a", receive_stock("sku-a", 2, "r-4"))                          # a valid one after them

    e2e.wait_until(lambda: http.sku("sku-a")[1].get("receivedTotal") == 7, 30, "the valid receipt after the bad ones")
    e2e.wait_until(lambda: http.metrics().get("ffe_ingress_submitted_total", 0) >= submitted0 + len(bad) + 2, 30,
                   "the engine to take every command")
    time.sleep(2.0)  # DLQ records are produced after the command's acknowledgement
    sku = http.sku("sku-a")[1]
    h.check(sku["onHand"] == 7 and sku["adjustedInTotal"] == 0 and sku["adjustedOutTotal"] == 0,
            "a bad inventory command changed sku-a: %s" % sku)
    dlq = {r.key.decode(): r for r in e2e.TopicReader(B, "ff.dlq").read_to_end() if r.key}
    m = http.metrics()
    log("ffe_commands_rejected_total +%d, ff.dlq keys %s" %
        (m.get("ffe_commands_rejected_total", 0) - rejected0, sorted(dlq)))
    for key, (value, field) in sorted(bad.items()):
        r = dlq.get(key)
        if not h.check(r is not None,
                       "invariant 6: %s (%s, ff.inventory.commands/%d@%d) breaks a contract rule but is neither on "
                       "ff.dlq nor answered anywhere: dropped silently (only ffe_commands_rejected_total counts it)"
                       % (key, value.decode(), sent[key][0], sent[key][1])):
            continue
        hd = e2e.headers_of(r)
        h.check(r.value == value and hd.get("ff-source-topic") == "ff.inventory.commands" and
                hd.get("ff-source-partition") == str(sent[key][0]) and hd.get("ff-source-offset") == str(sent[key][1]),
                "dlq %s: %r %s" % (key, r.value, hd))
        h.check(field in (hd.get("ff-error") or ""), "dlq %s: ff-error %r does not name %s" % (key, hd.get("ff-error"), field))
    log("the domain's refusal (adjustStock -100 on onHand 5, %d@%d): %s" %
        (refusal[0], refusal[1], "on ff.dlq: %s" % e2e.headers_of(dlq["k-below-zero"]).get("ff-error")
         if "k-below-zero" in dlq else "not on ff.dlq, no trace outside ffe_commands_rejected_total"))
    h.check_alive(serve, broker)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    e2e.Harness("E2E.InvalidInventoryCommandsAreNotDroppedSilently", sys.argv[1]).run(body)
