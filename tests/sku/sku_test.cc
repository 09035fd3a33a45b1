// The SKU decider, table-driven (STYLE habit 10): given events, when a command, then events
// or a rejection, and the StockReply an order would get. Events and replies are rendered to
// compact strings and compared as strings (LevelDB's habit), so a failure shows the whole
// outcome at once.

#include "actors/sku/sku.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>

#include "events/limits.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace ffe::sku {
namespace {

using v1::SkuEvent;
using v1::StockCommand;
using v1::StockReply;

const std::string sku_key = "sku-1";

// ---------------------------------------------------------------------------------------
// Builders

SkuEvent received(std::int64_t qty, const std::string& receipt_id) {
  SkuEvent event;
  event.mutable_received()->set_qty(qty);
  event.mutable_received()->set_receipt_id(receipt_id);
  return event;
}

SkuEvent adjusted(std::int64_t delta, const std::string& adjustment_id) {
  SkuEvent event;
  event.mutable_adjusted()->set_delta(delta);
  event.mutable_adjusted()->set_adjustment_id(adjustment_id);
  event.mutable_adjusted()->set_reason("cycle count");
  return event;
}

SkuEvent reserved(const std::string& order_id, std::int64_t qty) {
  SkuEvent event;
  event.mutable_reserved()->set_order_id(order_id);
  event.mutable_reserved()->set_qty(qty);
  return event;
}

SkuEvent released(const std::string& order_id, std::int64_t qty) {
  SkuEvent event;
  event.mutable_released()->set_order_id(order_id);
  event.mutable_released()->set_qty(qty);
  return event;
}

SkuEvent committed(const std::string& order_id, std::int64_t qty) {
  SkuEvent event;
  event.mutable_committed()->set_order_id(order_id);
  event.mutable_committed()->set_qty(qty);
  return event;
}

Command receive(std::int64_t qty, const std::string& receipt_id,
                const std::string& sku = sku_key) {
  v1::ReceiveStock command;
  command.set_sku(sku);
  command.set_qty(qty);
  command.set_receipt_id(receipt_id);
  return command;
}

Command adjust(std::int64_t delta, const std::string& adjustment_id,
               const std::string& sku = sku_key) {
  v1::AdjustStock command;
  command.set_sku(sku);
  command.set_delta(delta);
  command.set_reason("cycle count");
  command.set_adjustment_id(adjustment_id);
  return command;
}

StockCommand stock(StockCommand::Kind kind, const std::string& order_id, std::int64_t qty,
                   const std::string& sku = sku_key) {
  StockCommand command;
  const char* verb = kind == StockCommand::RESERVE   ? ":reserve:"
                     : kind == StockCommand::RELEASE ? ":release:"
                                                     : ":commit:";
  command.set_command_id(order_id + verb + sku);
  command.set_order_id(order_id);
  command.set_sku(sku);
  command.set_qty(qty);
  command.set_kind(kind);
  return command;
}

Command reserve(const std::string& order_id, std::int64_t qty, const std::string& sku = sku_key) {
  return stock(StockCommand::RESERVE, order_id, qty, sku);
}
Command release(const std::string& order_id, std::int64_t qty, const std::string& sku = sku_key) {
  return stock(StockCommand::RELEASE, order_id, qty, sku);
}
Command commit(const std::string& order_id, std::int64_t qty, const std::string& sku = sku_key) {
  return stock(StockCommand::COMMIT, order_id, qty, sku);
}

State build(const std::vector<SkuEvent>& events, std::string_view sku = sku_key) {
  State state;
  for (const SkuEvent& event : events) evolve(state, sku, event);
  return state;
}

// ---------------------------------------------------------------------------------------
// Rendering

std::string render(const SkuEvent& event) {
  switch (event.event_case()) {
    case SkuEvent::kReceived:
      return "received(" + std::to_string(event.received().qty()) + "," +
             event.received().receipt_id() + ")";
    case SkuEvent::kAdjusted:
      return "adjusted(" + std::to_string(event.adjusted().delta()) + "," +
             event.adjusted().adjustment_id() + ")";
    case SkuEvent::kReserved:
      return "reserved(" + event.reserved().order_id() + "," +
             std::to_string(event.reserved().qty()) + ")";
    case SkuEvent::kReleased:
      return "released(" + event.released().order_id() + "," +
             std::to_string(event.released().qty()) + ")";
    case SkuEvent::kCommitted:
      return "committed(" + event.committed().order_id() + "," +
             std::to_string(event.committed().qty()) + ")";
    case SkuEvent::EVENT_NOT_SET: break;
  }
  return "unset()";
}

// Events separated by spaces ("" for none), or "rejected(<code>): <reason>".
std::string render(const Decision& decision) {
  if (decision.rejected()) {
    return std::string("rejected(") + to_string(decision.rejection->code) +
           "): " + decision.rejection->reason;
  }
  std::string out;
  for (const SkuEvent& event : decision.events) {
    if (!out.empty()) out += ' ';
    out += render(event);
  }
  return out;
}

std::string render(const StockReply& reply) {
  return StockReply::Status_Name(reply.status()) + " " + std::to_string(reply.qty());
}

// "onHand=7 reserved=2 in=10/0/3 shipped=0 holds=[o-1:2] closed=[o-2:released] receipts=[r-1]
// adjustments=[a-1]"
std::string render(const State& state) {
  std::string out = "onHand=" + std::to_string(state.on_hand) +
                    " reserved=" + std::to_string(state.reserved) +
                    " in=" + std::to_string(state.received_total) + "/" +
                    std::to_string(state.adjusted_in_total) + "/" +
                    std::to_string(state.adjusted_out_total) +
                    " shipped=" + std::to_string(state.shipped_total) + " holds=[";
  std::vector<std::pair<std::string, std::int64_t>> holds(state.reservations.begin(),
                                                          state.reservations.end());
  std::sort(holds.begin(), holds.end());
  for (std::size_t i = 0; i < holds.size(); ++i) {
    out += (i ? " " : "") + holds[i].first + ":" + std::to_string(holds[i].second);
  }
  out += "] closed=[";
  for (std::size_t i = 0; i < state.closed.size(); ++i) {
    out += (i ? " " : "") + state.closed[i].order_id + ":" +
           (state.closed[i].committed ? "committed" : "released");
  }
  out += "] receipts=[";
  for (std::size_t i = 0; i < state.recent_receipt_ids.size(); ++i) {
    out += (i ? " " : "") + state.recent_receipt_ids[i];
  }
  out += "] adjustments=[";
  for (std::size_t i = 0; i < state.recent_adjustment_ids.size(); ++i) {
    out += (i ? " " : "") + state.recent_adjustment_ids[i];
  }
  return out + "]";
}

std::string deterministic_bytes(const google::protobuf::Message& message) {
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeToCodedStream(&coded);
  coded.Trim();
  return bytes;
}

// ---------------------------------------------------------------------------------------
// given(events).when(command).then_...(): decides, applies the events to a copy, and checks
// the state after still keeps every invariant.

class Scenario {
 public:
  explicit Scenario(const std::vector<SkuEvent>& given) : before_(build(given)) {}

  Scenario& when(const Command& command) {
    command_ = command;
    decision_ = decide(before_, command, /*now_ms=*/0);
    after_ = before_;
    const std::string& key = before_.exists() ? before_.sku : command_sku(command);
    for (const SkuEvent& event : decision_.events) evolve(after_, key, event);
    EXPECT_EQ(std::nullopt, check_invariants(after_));
    return *this;
  }

  Scenario& then_events(std::string_view expected,
                        std::source_location where = std::source_location::current()) {
    testing::ScopedTrace trace(where.file_name(), static_cast<int>(where.line()), "then_events");
    EXPECT_EQ(expected, render(decision_));
    return *this;
  }

  Scenario& then_rejected(RejectionCode code, std::string_view reason_substring,
                          std::source_location where = std::source_location::current()) {
    testing::ScopedTrace trace(where.file_name(), static_cast<int>(where.line()),
                               "then_rejected");
    if (!decision_.rejected()) {
      ADD_FAILURE() << "not rejected: " << render(decision_);
      return *this;
    }
    EXPECT_EQ(to_string(code), std::string(to_string(decision_.rejection->code)));
    EXPECT_NE(std::string::npos, decision_.rejection->reason.find(reason_substring))
        << decision_.rejection->reason;
    EXPECT_TRUE(decision_.events.empty());
    EXPECT_EQ(before_, after_);
    return *this;
  }

  Scenario& then_reply(StockReply::Status status, std::int64_t qty,
                       std::source_location where = std::source_location::current()) {
    testing::ScopedTrace trace(where.file_name(), static_cast<int>(where.line()), "then_reply");
    EXPECT_EQ(StockReply::Status_Name(status) + " " + std::to_string(qty), render(reply()));
    return *this;
  }

  StockReply reply() const { return answer(after_, std::get<StockCommand>(command_), decision_); }
  const State& after() const { return after_; }
  const Decision& decision() const { return decision_; }

 private:
  static std::string command_sku(const Command& command) {
    return std::visit([](const auto& c) { return c.sku(); }, command);
  }

  State before_;
  State after_;
  Command command_;
  Decision decision_;
};

Scenario given(const std::vector<SkuEvent>& events) { return Scenario(events); }

// ---------------------------------------------------------------------------------------
// The table: every transition, idempotency rule and rejection of the header.

struct Case {
  const char* name;
  std::vector<SkuEvent> given;
  Command when;
  // The rendered decision: events ("" for none), or "rejected(<code>): <reason substring>".
  std::string then;
  // For a StockCommand, the rendered reply "<STATUS> <qty>"; "" for inventory commands.
  std::string reply;
};

const std::string long_id(limits::id_length_max + 1, 'x');

std::vector<Case> cases() {
  return {
      // --- ReceiveStock
      {"receive creates the sku", {}, receive(10, "r-1"), "received(10,r-1)", ""},
      {"receive adds", {received(10, "r-1")}, receive(5, "r-2"), "received(5,r-2)", ""},
      {"repeated receipt is a no-op", {received(10, "r-1")}, receive(10, "r-1"), "", ""},
      {"repeated receipt with another qty is a no-op", {received(10, "r-1")},
       receive(99, "r-1"), "", ""},
      {"receipt id is per sku, not shared with adjustments", {adjusted(5, "x-1")},
       receive(1, "x-1"), "received(1,x-1)", ""},
      {"receipt qty 0 is invalid", {}, receive(0, "r-1"), "rejected(invalid): receiveStock.qty",
       ""},
      {"receipt negative qty is invalid", {}, receive(-4, "r-1"),
       "rejected(invalid): receiveStock.qty", ""},
      {"receipt above receipt_qty_max is invalid", {},
       receive(limits::receipt_qty_max + 1, "r-1"), "rejected(invalid): receiveStock.qty", ""},
      {"receipt with a bad id is invalid", {}, receive(1, "r 1"),
       "rejected(invalid): receiveStock.receiptId", ""},
      {"receipt with no sku is invalid", {}, receive(1, "r-1", ""),
       "rejected(invalid): receiveStock.sku", ""},
      {"receipt for another sku is invalid", {received(10, "r-1")}, receive(1, "r-2", "sku-2"),
       "rejected(invalid): receiveStock.sku: must be this entity's key \"sku-1\" (got \"sku-2\")",
       ""},

      // --- AdjustStock
      {"adjust up", {}, adjust(5, "a-1"), "adjusted(5,a-1)", ""},
      {"adjust down", {received(10, "r-1")}, adjust(-3, "a-1"), "adjusted(-3,a-1)", ""},
      {"adjust down to exactly what is reserved", {received(10, "r-1"), reserved("o-1", 4)},
       adjust(-6, "a-1"), "adjusted(-6,a-1)", ""},
      {"adjust below reserved is invalid", {received(10, "r-1"), reserved("o-1", 4)},
       adjust(-7, "a-1"),
       "rejected(invalid): adjustStock.delta: would leave onHand 3 below reserved 4", ""},
      {"adjust below zero is invalid", {}, adjust(-1, "a-1"),
       "rejected(invalid): adjustStock.delta: would leave onHand -1 below reserved 0", ""},
      {"repeated adjustment is a no-op", {adjusted(5, "a-1")}, adjust(5, "a-1"), "", ""},
      {"repeated adjustment is a no-op even where it would now be invalid",
       {received(10, "r-1"), adjusted(-10, "a-1")}, adjust(-10, "a-1"), "", ""},
      {"rejected adjustment is not remembered", {received(10, "r-1"), reserved("o-1", 10)},
       adjust(-1, "a-1"), "rejected(invalid): adjustStock.delta", ""},
      {"adjust by 0 is invalid", {}, adjust(0, "a-1"), "rejected(invalid): adjustStock.delta",
       ""},
      {"adjust beyond adjustment_delta_max is invalid", {},
       adjust(limits::adjustment_delta_max + 1, "a-1"), "rejected(invalid): adjustStock.delta",
       ""},
      {"adjust with a bad id is invalid", {}, adjust(1, ""),
       "rejected(invalid): adjustStock.adjustmentId", ""},
      {"adjust another sku is invalid", {received(1, "r-1")}, adjust(1, "a-1", "sku-2"),
       "rejected(invalid): adjustStock.sku: must be this entity's key", ""},

      // --- RESERVE
      {"reserve within available", {received(10, "r-1")}, reserve("o-1", 3), "reserved(o-1,3)",
       "RESERVED 3"},
      {"reserve exactly what is available", {received(10, "r-1"), reserved("o-1", 4)},
       reserve("o-2", 6), "reserved(o-2,6)", "RESERVED 6"},
      {"reserve more than available", {received(10, "r-1")}, reserve("o-1", 11),
       "rejected(out of stock): out of stock: sku sku-1 has 10 available, order o-1 asked 11",
       "INSUFFICIENT 0"},
      {"reserve counts what others hold", {received(10, "r-1"), reserved("o-1", 8)},
       reserve("o-2", 3),
       "rejected(out of stock): out of stock: sku sku-1 has 2 available, order o-2 asked 3",
       "INSUFFICIENT 0"},
      {"reserve on a sku never stocked", {}, reserve("o-1", 1),
       "rejected(out of stock): out of stock: sku sku-1 has 0 available, order o-1 asked 1",
       "INSUFFICIENT 0"},
      {"reserve after an out of stock may succeed once stock came",
       {received(1, "r-1"), received(5, "r-2")}, reserve("o-1", 6), "reserved(o-1,6)",
       "RESERVED 6"},
      {"repeated reserve is a no-op", {received(10, "r-1"), reserved("o-1", 3)},
       reserve("o-1", 3), "", "RESERVED 3"},
      {"repeated reserve with another qty: the first wins",
       {received(10, "r-1"), reserved("o-1", 3)}, reserve("o-1", 5), "", "RESERVED 3"},
      {"repeated reserve when nothing is left still holds",
       {received(3, "r-1"), reserved("o-1", 3)}, reserve("o-1", 3), "", "RESERVED 3"},
      {"reserve after release is refused",
       {received(10, "r-1"), reserved("o-1", 3), released("o-1", 3)}, reserve("o-1", 3),
       "rejected(closed): order o-1 already released its reservation on sku sku-1",
       "REFUSED 0"},
      {"late reserve after an empty release is refused", {received(10, "r-1"), released("o-1", 0)},
       reserve("o-1", 3), "rejected(closed): order o-1 already released", "REFUSED 0"},
      {"reserve after commit is refused",
       {received(10, "r-1"), reserved("o-1", 3), committed("o-1", 3)}, reserve("o-1", 3),
       "rejected(closed): order o-1 already committed", "REFUSED 0"},
      {"reserve of 0 is invalid", {received(10, "r-1")}, reserve("o-1", 0),
       "rejected(invalid): stockCommand.qty: must be between 1 and 1000000 (got 0)", "REFUSED 0"},
      {"reserve above line_qty_max is invalid", {received(10, "r-1")},
       reserve("o-1", limits::line_qty_max + 1),
       "rejected(invalid): stockCommand.qty: must be between 1 and 1000000 (got 1000001)",
       "REFUSED 0"},
      {"reserve with a bad order id is invalid", {received(10, "r-1")}, reserve("o:1", 1),
       "rejected(invalid): stockCommand.orderId: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} "
       "(got \"o:1\")",
       "REFUSED 0"},
      {"reserve with no order id is invalid", {received(10, "r-1")}, reserve("", 1),
       "rejected(invalid): stockCommand.orderId", "REFUSED 0"},
      {"reserve with a too long order id is invalid", {received(10, "r-1")},
       reserve(long_id, 1), "rejected(invalid): stockCommand.orderId", "REFUSED 0"},
      {"reserve with a bad sku is invalid", {}, reserve("o-1", 1, "sku\n1"),
       "rejected(invalid): stockCommand.sku: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (got "
       "\"sku\\n1\")",
       "REFUSED 0"},
      {"a reason escapes bytes outside printable ASCII", {received(10, "r-1")},
       reserve("o-\xc3\xa9\"", 1),
       "rejected(invalid): stockCommand.orderId: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} "
       "(got \"o-\\xc3\\xa9\\\"\")",
       "REFUSED 0"},
      {"a reason quotes at most 64 bytes of a value", {received(10, "r-1")},
       reserve("o-" + std::string(100, 'y') + "!", 1),
       "rejected(invalid): stockCommand.orderId: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} "
       "(got \"o-" + std::string(62, 'y') + "...\")",
       "REFUSED 0"},
      {"reserve for another sku is invalid", {received(10, "r-1")}, reserve("o-1", 1, "sku-2"),
       "rejected(invalid): stockCommand.sku: must be this entity's key \"sku-1\" (got \"sku-2\")",
       "REFUSED 0"},
      {"stock command with no kind is invalid", {received(10, "r-1")},
       stock(StockCommand::KIND_UNSPECIFIED, "o-1", 1),
       "rejected(invalid): stockCommand.kind: must be RESERVE, RELEASE or COMMIT (got 0)",
       "REFUSED 0"},
      {"stock command with an unknown kind is invalid", {received(10, "r-1")},
       stock(static_cast<StockCommand::Kind>(42), "o-1", 1),
       "rejected(invalid): stockCommand.kind: must be RESERVE, RELEASE or COMMIT (got 42)",
       "REFUSED 0"},

      // --- RELEASE
      {"release what is held", {received(10, "r-1"), reserved("o-1", 3)}, release("o-1", 3),
       "released(o-1,3)", "RELEASED 3"},
      {"release releases what is held, whatever qty it names",
       {received(10, "r-1"), reserved("o-1", 3)}, release("o-1", 7), "released(o-1,3)",
       "RELEASED 3"},
      {"release with nothing held records the close", {received(10, "r-1")}, release("o-1", 2),
       "released(o-1,0)", "RELEASED 0"},
      {"release on a sku never seen records the close", {}, release("o-1", 2), "released(o-1,0)",
       "RELEASED 0"},
      {"repeated release is a no-op",
       {received(10, "r-1"), reserved("o-1", 3), released("o-1", 3)}, release("o-1", 3), "",
       "RELEASED 0"},
      {"repeated empty release is a no-op", {released("o-1", 0)}, release("o-1", 3), "",
       "RELEASED 0"},
      {"release after commit is refused",
       {received(10, "r-1"), reserved("o-1", 3), committed("o-1", 3)}, release("o-1", 3),
       "rejected(closed): order o-1 committed its reservation on sku sku-1: it cannot be released",
       "REFUSED 0"},
      {"release of 0 is invalid", {received(10, "r-1"), reserved("o-1", 3)}, release("o-1", 0),
       "rejected(invalid): stockCommand.qty", "REFUSED 0"},
      {"release for another sku is invalid", {received(10, "r-1"), reserved("o-1", 3)},
       release("o-1", 3, "sku-2"), "rejected(invalid): stockCommand.sku", "REFUSED 0"},

      // --- COMMIT
      {"commit what is held", {received(10, "r-1"), reserved("o-1", 3)}, commit("o-1", 3),
       "committed(o-1,3)", "COMMITTED 3"},
      {"commit commits what is held, whatever qty it names",
       {received(10, "r-1"), reserved("o-1", 3)}, commit("o-1", 1), "committed(o-1,3)",
       "COMMITTED 3"},
      {"repeated commit is a no-op",
       {received(10, "r-1"), reserved("o-1", 3), committed("o-1", 3)}, commit("o-1", 3), "",
       "COMMITTED 0"},
      {"commit after release is refused",
       {received(10, "r-1"), reserved("o-1", 3), released("o-1", 3)}, commit("o-1", 3),
       "rejected(closed): order o-1 released its reservation on sku sku-1: it cannot be committed",
       "REFUSED 0"},
      {"commit after an empty release is refused", {received(10, "r-1"), released("o-1", 0)},
       commit("o-1", 3), "rejected(closed): order o-1 released", "REFUSED 0"},
      {"commit with nothing held is invalid", {received(10, "r-1"), reserved("o-2", 3)},
       commit("o-1", 3), "rejected(invalid): nothing reserved for order o-1", "REFUSED 0"},
      {"commit on a sku never seen is invalid", {}, commit("o-1", 3),
       "rejected(invalid): nothing reserved for order o-1", "REFUSED 0"},
      {"commit of 0 is invalid", {received(10, "r-1"), reserved("o-1", 3)}, commit("o-1", 0),
       "rejected(invalid): stockCommand.qty", "REFUSED 0"},
  };
}

TEST(SkuDecide, Table) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    Scenario scenario = given(c.given);
    scenario.when(c.when);
    const std::string rendered = render(scenario.decision());
    if (c.then.rfind("rejected(", 0) == 0) {
      // The code exactly, the reason by substring.
      const std::size_t code_end = c.then.find("): ");
      ASSERT_NE(std::string::npos, code_end) << "bad case: " << c.then;
      EXPECT_EQ(c.then.substr(0, code_end + 3), rendered.substr(0, code_end + 3)) << rendered;
      EXPECT_NE(std::string::npos, rendered.find(c.then.substr(code_end + 3), code_end))
          << rendered;
      EXPECT_TRUE(scenario.decision().events.empty());
    } else {
      EXPECT_EQ(c.then, rendered);
    }
    if (!c.reply.empty()) {
      EXPECT_EQ(c.reply, render(scenario.reply()));
    }
  }
}

TEST(SkuDecide, FluentHelperReadsLikeTheSpec) {
  given({received(10, "r-1")})
      .when(reserve("o-1", 4))
      .then_events("reserved(o-1,4)")
      .then_reply(StockReply::RESERVED, 4);
  given({received(1, "r-1")})
      .when(reserve("o-1", 2))
      .then_rejected(RejectionCode::kOutOfStock, "has 1 available")
      .then_reply(StockReply::INSUFFICIENT, 0);
  given({released("o-1", 0)})
      .when(reserve("o-1", 2))
      .then_rejected(RejectionCode::kClosed, "a late reserve is refused")
      .then_reply(StockReply::REFUSED, 0);
}

TEST(SkuDecide, DecideDoesNotDependOnTheClock) {
  const State state = build({received(10, "r-1"), reserved("o-1", 2)});
  for (const Command& command : {reserve("o-2", 3), release("o-1", 2), commit("o-1", 2),
                                 receive(1, "r-2"), adjust(-1, "a-1")}) {
    EXPECT_EQ(render(decide(state, command, 0)),
              render(decide(state, command, std::numeric_limits<std::int64_t>::max())));
  }
}

// ---------------------------------------------------------------------------------------
// answer(): every field

TEST(SkuAnswer, CopiesIdsAndReportsAvailableAfter) {
  Scenario scenario = given({received(10, "r-1")});
  scenario.when(reserve("o-1", 4));
  const StockReply reply = scenario.reply();
  EXPECT_EQ("o-1:reserve:sku-1", reply.command_id());
  EXPECT_EQ("o-1", reply.order_id());
  EXPECT_EQ("sku-1", reply.sku());
  EXPECT_EQ(StockReply::RESERVED, reply.status());
  EXPECT_EQ(4, reply.qty());
  EXPECT_EQ(6, reply.available());
  EXPECT_EQ("", reply.reason());
}

TEST(SkuAnswer, RejectionCarriesItsReason) {
  Scenario scenario = given({received(2, "r-1")});
  scenario.when(reserve("o-1", 4));
  const StockReply reply = scenario.reply();
  EXPECT_EQ(StockReply::INSUFFICIENT, reply.status());
  EXPECT_EQ(0, reply.qty());
  EXPECT_EQ(2, reply.available());
  EXPECT_EQ("out of stock: sku sku-1 has 2 available, order o-1 asked 4", reply.reason());
}

TEST(SkuAnswer, CommitAndReleaseReportAvailableAfter) {
  Scenario commit_scenario = given({received(10, "r-1"), reserved("o-1", 3), reserved("o-2", 2)});
  commit_scenario.when(commit("o-1", 3));
  EXPECT_EQ(5, commit_scenario.reply().available());  // on hand 7, o-2 holds 2
  EXPECT_EQ("", commit_scenario.reply().reason());

  Scenario release_scenario = given({received(10, "r-1"), reserved("o-1", 3)});
  release_scenario.when(release("o-1", 3));
  EXPECT_EQ(10, release_scenario.reply().available());
}

TEST(SkuAnswer, RepeatedCommandGetsTheSameStatus) {
  // The saga resends until answered; each resend must get the answer of the first.
  State state = build({received(10, "r-1")});
  for (const Command& command : {reserve("o-1", 3), commit("o-1", 3)}) {
    const StockCommand& stock_command = std::get<StockCommand>(command);
    const Decision first = decide(state, command, 0);
    for (const SkuEvent& event : first.events) evolve(state, sku_key, event);
    const StockReply first_reply = answer(state, stock_command, first);
    const Decision repeat = decide(state, command, 0);
    EXPECT_TRUE(repeat.events.empty());
    EXPECT_FALSE(repeat.rejected());
    EXPECT_EQ(first_reply.status(), answer(state, stock_command, repeat).status());
  }
}

// ---------------------------------------------------------------------------------------
// evolve(): each event's effect on the whole state

TEST(SkuEvolve, EachEvent) {
  State state;
  EXPECT_FALSE(state.exists());
  evolve(state, sku_key, received(10, "r-1"));
  EXPECT_EQ("sku-1", state.sku);
  EXPECT_EQ("onHand=10 reserved=0 in=10/0/0 shipped=0 holds=[] closed=[] receipts=[r-1] "
            "adjustments=[]",
            render(state));
  evolve(state, sku_key, adjusted(3, "a-1"));
  evolve(state, sku_key, adjusted(-2, "a-2"));
  EXPECT_EQ("onHand=11 reserved=0 in=10/3/2 shipped=0 holds=[] closed=[] receipts=[r-1] "
            "adjustments=[a-1 a-2]",
            render(state));
  evolve(state, sku_key, reserved("o-2", 4));
  evolve(state, sku_key, reserved("o-1", 2));
  EXPECT_EQ("onHand=11 reserved=6 in=10/3/2 shipped=0 holds=[o-1:2 o-2:4] closed=[] "
            "receipts=[r-1] adjustments=[a-1 a-2]",
            render(state));
  EXPECT_EQ(5, state.available());
  evolve(state, sku_key, released("o-2", 4));
  EXPECT_EQ("onHand=11 reserved=2 in=10/3/2 shipped=0 holds=[o-1:2] closed=[o-2:released] "
            "receipts=[r-1] adjustments=[a-1 a-2]",
            render(state));
  evolve(state, sku_key, committed("o-1", 2));
  EXPECT_EQ("onHand=9 reserved=0 in=10/3/2 shipped=2 holds=[] closed=[o-2:released "
            "o-1:committed] receipts=[r-1] adjustments=[a-1 a-2]",
            render(state));
  evolve(state, sku_key, released("o-3", 0));
  EXPECT_EQ("onHand=9 reserved=0 in=10/3/2 shipped=2 holds=[] closed=[o-2:released "
            "o-1:committed o-3:released] receipts=[r-1] adjustments=[a-1 a-2]",
            render(state));
  EXPECT_EQ(std::nullopt, check_invariants(state));
}

TEST(SkuEvolve, FirstEventMayBeAnEmptyRelease) {
  const State state = build({released("o-1", 0)});
  EXPECT_TRUE(state.exists());
  EXPECT_EQ("onHand=0 reserved=0 in=0/0/0 shipped=0 holds=[] closed=[o-1:released] receipts=[] "
            "adjustments=[]",
            render(state));
}

using SkuEvolveDeathTest = testing::Test;

TEST_F(SkuEvolveDeathTest, AnEventThatBreaksAnInvariantAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const State state = build({received(10, "r-1"), reserved("o-1", 3), released("o-2", 0)});
  const auto apply = [&](const SkuEvent& event, std::string_view sku = sku_key) {
    State copy = state;
    evolve(copy, sku, event);
  };
  EXPECT_DEATH(apply(reserved("o-3", 8)), "oversell");
  EXPECT_DEATH(apply(reserved("o-1", 1)), "already holds");
  EXPECT_DEATH(apply(reserved("o-2", 1)), "closed");
  EXPECT_DEATH(apply(reserved("o-3", 0)), "qty must be >= 1");
  EXPECT_DEATH(apply(released("o-1", 2)), "differs from the units held");
  EXPECT_DEATH(apply(released("o-3", 1)), "holds nothing");
  EXPECT_DEATH(apply(released("o-2", 0)), "already closed");
  EXPECT_DEATH(apply(committed("o-3", 1)), "holds nothing");
  EXPECT_DEATH(apply(committed("o-1", 4)), "differs from the units held");
  EXPECT_DEATH(apply(adjusted(-8, "a-1")), "below reserved");
  EXPECT_DEATH(apply(adjusted(0, "a-1")), "delta must be != 0");
  EXPECT_DEATH(apply(received(0, "r-2")), "qty must be >= 1");
  EXPECT_DEATH(apply(received(1, "r-1")), "already in the window");
  EXPECT_DEATH(apply(SkuEvent{}), "no event set");
  EXPECT_DEATH(apply(received(1, "r-2"), "sku-2"), "another sku");
  EXPECT_DEATH(apply(received(1, "r-2"), ""), "empty sku");
}

// ---------------------------------------------------------------------------------------
// Windows: bounded, oldest out; past the window the aggregate no longer deduplicates
// (documented in docs/sku.md: the journal's input positions still stop a redelivery).

TEST(SkuWindows, ReceiptWindowForgetsTheOldest) {
  std::vector<SkuEvent> events;
  for (std::size_t i = 0; i <= limits::sku_recent_receipts_max; ++i) {
    events.push_back(received(1, "r-" + std::to_string(i)));
  }
  const State state = build(events);
  EXPECT_EQ(limits::sku_recent_receipts_max, state.recent_receipt_ids.size());
  EXPECT_EQ("r-1", state.recent_receipt_ids.front());
  EXPECT_EQ(std::nullopt, check_invariants(state));
  given(events).when(receive(1, "r-0")).then_events("received(1,r-0)");
  given(events).when(receive(1, "r-1")).then_events("");
  given(events)
      .when(receive(1, "r-" + std::to_string(limits::sku_recent_receipts_max)))
      .then_events("");
}

TEST(SkuWindows, AdjustmentWindowForgetsTheOldest) {
  std::vector<SkuEvent> events;
  for (std::size_t i = 0; i <= limits::sku_recent_adjustments_max; ++i) {
    events.push_back(adjusted(1, "a-" + std::to_string(i)));
  }
  const State state = build(events);
  EXPECT_EQ(limits::sku_recent_adjustments_max, state.recent_adjustment_ids.size());
  EXPECT_EQ("a-1", state.recent_adjustment_ids.front());
  given(events).when(adjust(1, "a-0")).then_events("adjusted(1,a-0)");
  given(events).when(adjust(1, "a-1")).then_events("");
}

TEST(SkuWindows, ClosedWindowForgetsTheOldest) {
  std::vector<SkuEvent> events = {received(10, "r-1")};
  for (std::size_t i = 0; i <= limits::sku_closed_reservations_max; ++i) {
    events.push_back(released("o-" + std::to_string(i), 0));
  }
  const State state = build(events);
  EXPECT_EQ(limits::sku_closed_reservations_max, state.closed.size());
  EXPECT_EQ("o-1", state.closed.front().order_id);
  EXPECT_EQ(std::nullopt, check_invariants(state));
  // o-0 fell out of the window: its late reserve is no longer refused (documented).
  given(events).when(reserve("o-0", 1)).then_events("reserved(o-0,1)");
  given(events).when(release("o-0", 1)).then_events("released(o-0,0)");
  given(events).when(commit("o-0", 1)).then_rejected(RejectionCode::kInvalid, "nothing reserved");
  // o-1 is the oldest still remembered.
  given(events).when(reserve("o-1", 1)).then_rejected(RejectionCode::kClosed, "order o-1");
  given(events).when(release("o-1", 1)).then_events("").then_reply(StockReply::RELEASED, 0);
}

TEST(SkuWindows, OpenReservationsAreNeverForgotten) {
  // Only closes enter the window: an order holding stock is remembered however many others
  // come and go, so its commit always finds it.
  std::vector<SkuEvent> events = {received(10, "r-1"), reserved("o-held", 2)};
  for (std::size_t i = 0; i <= limits::sku_closed_reservations_max; ++i) {
    events.push_back(released("o-" + std::to_string(i), 0));
  }
  given(events).when(commit("o-held", 2)).then_events("committed(o-held,2)");
}

// ---------------------------------------------------------------------------------------
// Overflow: counters stay within int64 (a rejection, never wrap-around)

TEST(SkuDecide, UnitsTakenInNeverOverflow) {
  v1::SkuSnapshot snapshot;
  snapshot.set_schema_version(1);
  snapshot.set_sku(sku_key);
  const std::int64_t near_max = std::numeric_limits<std::int64_t>::max() - 5;
  snapshot.set_on_hand(near_max);
  snapshot.set_received_total(near_max);
  const State state = from_snapshot(snapshot);
  ASSERT_EQ(std::nullopt, check_invariants(state));
  EXPECT_EQ("rejected(invalid): receiveStock.qty: would take the units taken in past "
            "9223372036854775807 (got 6)",
            render(decide(state, receive(6, "r-1"), 0)));
  EXPECT_EQ("received(5,r-1)", render(decide(state, receive(5, "r-1"), 0)));
  EXPECT_EQ("rejected(invalid): adjustStock.delta: would take the units taken in past "
            "9223372036854775807 (got 6)",
            render(decide(state, adjust(6, "a-1"), 0)));
  EXPECT_EQ("adjusted(5,a-1)", render(decide(state, adjust(5, "a-1"), 0)));
}

// ---------------------------------------------------------------------------------------
// Snapshots

State rich_state() {
  return build({received(10, "r-1"), received(7, "r-2"), adjusted(-2, "a-1"), adjusted(4, "a-2"),
                reserved("o-3", 1), reserved("o-1", 2), reserved("o-2", 3), released("o-9", 0),
                reserved("o-4", 1), committed("o-4", 1), reserved("o-5", 2), released("o-5", 2)});
}

TEST(SkuSnapshot, RoundTripGivesAnEqualState) {
  for (const State& state : {State{}, build({received(1, "r-1")}), rich_state()}) {
    const State restored = from_snapshot(to_snapshot(state));
    EXPECT_EQ(state, restored);
    EXPECT_EQ(render(state), render(restored));
    // The derived index is rebuilt exactly (operator== deliberately ignores it).
    EXPECT_EQ(state.index.closed, restored.index.closed);
    EXPECT_EQ(state.index.receipt_ids, restored.index.receipt_ids);
    EXPECT_EQ(state.index.adjustment_ids, restored.index.adjustment_ids);
    EXPECT_EQ(std::nullopt, check_invariants(restored));
    EXPECT_EQ(deterministic_bytes(to_snapshot(state)), deterministic_bytes(to_snapshot(restored)));
  }
}

TEST(SkuSnapshot, IsCanonical) {
  const v1::SkuSnapshot snapshot = to_snapshot(rich_state());
  EXPECT_EQ(1u, snapshot.schema_version());
  EXPECT_EQ("sku-1", snapshot.sku());
  EXPECT_EQ(18, snapshot.on_hand());
  EXPECT_EQ(6, snapshot.reserved());
  EXPECT_EQ(17, snapshot.received_total());
  EXPECT_EQ(4, snapshot.adjusted_in_total());
  EXPECT_EQ(2, snapshot.adjusted_out_total());
  EXPECT_EQ(1, snapshot.shipped_total());
  std::string reservations;
  for (const auto& reservation : snapshot.reservations()) {
    reservations += reservation.order_id() + ":" + std::to_string(reservation.qty()) + " ";
  }
  EXPECT_EQ("o-1:2 o-2:3 o-3:1 ", reservations);  // sorted by order id
  std::string closed;
  for (const auto& entry : snapshot.closed()) {
    closed += entry.order_id() + (entry.committed() ? ":c " : ":r ");
  }
  EXPECT_EQ("o-9:r o-4:c o-5:r ", closed);  // oldest first
  EXPECT_EQ("r-1,r-2", snapshot.recent_receipt_ids(0) + "," + snapshot.recent_receipt_ids(1));
  EXPECT_EQ("a-1,a-2",
            snapshot.recent_adjustment_ids(0) + "," + snapshot.recent_adjustment_ids(1));
}

TEST(SkuSnapshot, SameStateFromAnotherOrderGivesIdenticalBytes) {
  const State a = build({received(10, "r-1"), reserved("o-1", 2), reserved("o-2", 3)});
  const State b = build({received(10, "r-1"), reserved("o-2", 3), reserved("o-1", 2)});
  EXPECT_EQ(a, b);
  EXPECT_EQ(deterministic_bytes(to_snapshot(a)), deterministic_bytes(to_snapshot(b)));
  EXPECT_EQ(to_snapshot(a).SerializeAsString(), to_snapshot(b).SerializeAsString());

  // Many holds, inserted in opposite orders, with rehashes and erased neighbours on one
  // side only: the map's internal order differs, the snapshot does not.
  std::vector<SkuEvent> forward = {received(100000, "r-1")};
  std::vector<SkuEvent> backward = {received(100000, "r-1")};
  constexpr int holds = 2000;
  for (int i = 0; i < holds; ++i) forward.push_back(reserved("o-" + std::to_string(i), 1 + i % 7));
  for (int i = holds - 1; i >= 0; --i) {
    backward.push_back(reserved("x-" + std::to_string(i), 1));
    backward.push_back(reserved("o-" + std::to_string(i), 1 + i % 7));
  }
  State c = build(forward);
  State d = build(backward);
  // Close the x-* holds on d and the same count of fresh orders on c, so both windows match.
  for (int i = 0; i < holds; ++i) {
    evolve(d, sku_key, released("x-" + std::to_string(i), 1));
    evolve(c, sku_key, reserved("x-" + std::to_string(i), 1));
    evolve(c, sku_key, released("x-" + std::to_string(i), 1));
  }
  EXPECT_EQ(c, d);
  EXPECT_EQ(deterministic_bytes(to_snapshot(c)), deterministic_bytes(to_snapshot(d)));
}

TEST(SkuSnapshot, DifferentStatesGiveDifferentBytes) {
  const State a = build({received(10, "r-1"), reserved("o-1", 2)});
  const State b = build({received(10, "r-1"), reserved("o-1", 3)});
  EXPECT_NE(a, b);
  EXPECT_NE(deterministic_bytes(to_snapshot(a)), deterministic_bytes(to_snapshot(b)));
}

TEST(SkuSnapshot, RestoredStateDecidesLikeTheLiveOne) {
  const State live = rich_state();
  const State restored = from_snapshot(to_snapshot(live));
  for (const Command& command :
       {reserve("o-9", 1), reserve("o-4", 1), release("o-5", 2), commit("o-5", 2),
        reserve("o-1", 9), reserve("o-6", 7), reserve("o-6", 8), receive(1, "r-2"),
        adjust(1, "a-1"), commit("o-2", 3)}) {
    EXPECT_EQ(render(decide(live, command, 0)), render(decide(restored, command, 0)));
  }
}

using SkuSnapshotDeathTest = testing::Test;

TEST_F(SkuSnapshotDeathTest, NewerSchemaAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  v1::SkuSnapshot snapshot;
  snapshot.set_schema_version(2);
  EXPECT_DEATH(from_snapshot(snapshot), "newer schema");
}

// ---------------------------------------------------------------------------------------
// check_invariants() catches hand-broken states

TEST(SkuInvariants, HoldOnValidStates) {
  EXPECT_EQ(std::nullopt, check_invariants(State{}));
  EXPECT_EQ(std::nullopt, check_invariants(rich_state()));
}

TEST(SkuInvariants, CatchHandBrokenStates) {
  struct Breakage {
    const char* name;
    void (*apply)(State&);
    const char* expected;  // substring of the report
  };
  const Breakage breakages[] = {
      {"reserved above on hand", [](State& s) { s.reserved = s.on_hand + 1; }, "1: "},
      {"negative reserved", [](State& s) { s.reserved = -1; }, "1: "},
      {"reserved not the sum", [](State& s) { s.reservations["o-1"] += 1; }, "2: reserved 6"},
      {"empty reservation",
       [](State& s) {
         s.reservations["o-0"] = 0;
       },
       "2: reservation of order o-0 holds 0"},
      {"on hand off the books", [](State& s) { s.on_hand += 1; }, "3: on_hand 19"},
      {"negative total", [](State& s) { s.adjusted_out_total = -1; }, "3: a total is negative"},
      // Invariant 4 is implied by 1 and 3 with non-negative totals, so 3 reports it first.
      {"shipped more than came in", [](State& s) { s.shipped_total += 100; }, "3: on_hand 18"},
      {"order both held and closed",
       [](State& s) {
         s.closed.push_back({"o-1", false});
         s.index.closed.emplace("o-1", false);
       },
       "5: order o-1 both holds a reservation and is closed"},
      {"closed window over its limit",
       [](State& s) {
         for (std::size_t i = 0; i <= limits::sku_closed_reservations_max; ++i) {
           s.closed.push_back({"c-" + std::to_string(i), true});
         }
       },
       "5: closed window holds 4100"},
      {"receipt window over its limit",
       [](State& s) {
         for (std::size_t i = 0; i < limits::sku_recent_receipts_max; ++i) {
           s.recent_receipt_ids.push_back("z-" + std::to_string(i));
         }
       },
       "5: receipt window holds 1026"},
      {"adjustment window over its limit",
       [](State& s) {
         for (std::size_t i = 0; i < limits::sku_recent_adjustments_max; ++i) {
           s.recent_adjustment_ids.push_back("z-" + std::to_string(i));
         }
       },
       "5: adjustment window holds 1026"},
      {"window edited without its index",
       [](State& s) { s.recent_receipt_ids.push_back("r-9"); }, "index: 2 receipt ids"},
      {"index missing an entry", [](State& s) { s.index.closed.erase("o-9"); },
       "index: 2 closed orders indexed, window holds 3"},
      {"adjustment index missing an entry", [](State& s) { s.index.adjustment_ids.clear(); },
       "index: 0 adjustment ids indexed, window holds 2"},
      {"content without a sku", [](State& s) { s.sku.clear(); }, "no sku but the state"},
  };
  for (const Breakage& breakage : breakages) {
    SCOPED_TRACE(breakage.name);
    State state = rich_state();
    ASSERT_EQ(std::nullopt, check_invariants(state));
    breakage.apply(state);
    const std::optional<std::string> report = check_invariants(state);
    ASSERT_NE(std::nullopt, report);
    EXPECT_NE(std::string::npos, report->find(breakage.expected)) << *report;
  }
}

// A corrupt snapshot (storage checks snapshots when it reads them; this is the second line).
TEST(SkuInvariants, CatchCorruptSnapshots) {
  v1::SkuSnapshot repeated_receipt = to_snapshot(rich_state());
  repeated_receipt.add_recent_receipt_ids("r-1");
  EXPECT_EQ("index: 2 receipt ids indexed, window holds 3",
            check_invariants(from_snapshot(repeated_receipt)).value_or("holds"));

  v1::SkuSnapshot held_and_closed = to_snapshot(rich_state());
  auto* closed = held_and_closed.add_closed();
  closed->set_order_id("o-1");
  EXPECT_EQ("5: order o-1 both holds a reservation and is closed",
            check_invariants(from_snapshot(held_and_closed)).value_or("holds"));

  v1::SkuSnapshot oversold = to_snapshot(rich_state());
  oversold.set_reserved(oversold.on_hand() + 1);
  EXPECT_EQ("1: 0 <= reserved <= on_hand broken: reserved 19, on_hand 18",
            check_invariants(from_snapshot(oversold)).value_or("holds"));
}

// ---------------------------------------------------------------------------------------
// A seeded randomized run: few SKUs, many orders, repeats, stale ids and bad commands.
// After every command: invariants hold, a repeat of it changes nothing, and the reply agrees
// with the decision. Now and then, and at the end: the window index equals an independent
// rebuild, and rebuilding each SKU from its events gives an equal state with equal bytes.

std::uint64_t test_seed() {
  if (const char* text = std::getenv("FFE_SEED")) return std::strtoull(text, nullptr, 10);
  return 20240601;
}

void expect_rebuilds_equal(const State& state, const std::vector<SkuEvent>& log,
                           std::string_view key) {
  const State rebuilt = build(log, key);
  EXPECT_EQ(state, rebuilt);
  const State restored = from_snapshot(to_snapshot(state));
  EXPECT_EQ(state, restored);
  // operator== ignores the derived index by design: compare it on its own.
  for (const State* other : {&rebuilt, &restored}) {
    EXPECT_EQ(state.index.closed, other->index.closed);
    EXPECT_EQ(state.index.receipt_ids, other->index.receipt_ids);
    EXPECT_EQ(state.index.adjustment_ids, other->index.adjustment_ids);
  }
  EXPECT_EQ(deterministic_bytes(to_snapshot(state)), deterministic_bytes(to_snapshot(rebuilt)));
}

TEST(SkuRandomized, DecideEvolveKeepInvariants) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with FFE_SEED=" + std::to_string(seed) +
               ")");
  std::mt19937_64 rng(seed);
  const auto below = [&](std::size_t n) { return static_cast<std::int64_t>(rng() % n); };

  struct Sku {
    std::string key;
    State state;
    std::vector<SkuEvent> log;
    std::vector<std::string> open;  // orders this test saw reserve here and not yet close
  };
  constexpr int sku_count = 3;
  constexpr std::int64_t steps = 200'000;
  constexpr std::int64_t rebuild_every = 25'000;
  constexpr std::size_t open_orders_max = 48;  // beyond it, the oldest open order is released
  std::vector<Sku> skus;
  for (int i = 0; i < sku_count; ++i) skus.push_back({"sku-" + std::to_string(i), {}, {}, {}});

  // Ids come from sliding ranges, so some repeat within their window and some after they
  // fell out of it (then the aggregate takes them as new: documented behaviour).
  std::int64_t next_order = 0;
  std::int64_t next_receipt = 0;
  std::int64_t next_adjustment = 0;
  const auto pick = [&](std::int64_t& next, std::int64_t span, std::int64_t new_one_in) {
    if (below(new_one_in) == 0 || next == 0) return next++;
    return std::max<std::int64_t>(0, next - 1 - below(span));
  };
  const auto any_order = [&] { return "o-" + std::to_string(pick(next_order, 400, 3)); };

  enum Outcome { accepted, noop, out_of_stock, closed, invalid, closed_window_full, outcomes };
  std::int64_t counts[outcomes] = {};

  for (std::int64_t step = 0; step < steps; ++step) {
    Sku& sku = skus[below(sku_count)];
    const std::string& other_key = skus[(&sku - skus.data() + 1) % sku_count].key;
    const auto open_order = [&] {
      return sku.open.empty() ? any_order() : sku.open[below(sku.open.size())];
    };
    Command command;
    const std::int64_t roll = below(100);
    if (sku.open.size() > open_orders_max) {
      command = release(sku.open.front(), 1, sku.key);
    } else if (roll < 8) {
      command = receive(1 + below(20), "r-" + std::to_string(pick(next_receipt, 1500, 4)),
                        sku.key);
    } else if (roll < 12) {
      const std::int64_t delta = below(2) ? 1 + below(10) : -1 - below(10);
      command = adjust(delta, "a-" + std::to_string(pick(next_adjustment, 1500, 4)), sku.key);
    } else if (roll < 50) {
      const std::string order_id = below(4) ? "o-" + std::to_string(next_order++)
                                            : (below(2) ? open_order() : any_order());
      command = reserve(order_id, 1 + below(5), sku.key);
    } else if (roll < 70) {
      command = release(below(4) ? open_order() : any_order(), 1 + below(5), sku.key);
    } else if (roll < 95) {
      command = commit(below(4) ? open_order() : any_order(), 1 + below(5), sku.key);
    } else {
      switch (below(5)) {
        case 0: command = reserve(any_order(), 0, sku.key); break;
        case 1: command = reserve("o:bad", 1, sku.key); break;
        case 2: command = stock(StockCommand::KIND_UNSPECIFIED, "o-1", 1, sku.key); break;
        case 3: command = receive(0, "r-0", sku.key); break;
        default:
          command = sku.state.exists() ? reserve("o-1", 1, other_key) : adjust(0, "a-0", sku.key);
      }
    }

    const Decision decision = decide(sku.state, command, step);
    if (decision.rejected()) {
      ASSERT_TRUE(decision.events.empty()) << "step " << step;
      switch (decision.rejection->code) {
        case RejectionCode::kOutOfStock: ++counts[out_of_stock]; break;
        case RejectionCode::kClosed: ++counts[closed]; break;
        default: ++counts[invalid]; break;
      }
    } else {
      ++counts[decision.events.empty() ? noop : accepted];
    }
    for (const SkuEvent& event : decision.events) {
      evolve(sku.state, sku.key, event);
      sku.log.push_back(event);
      if (event.has_reserved()) sku.open.push_back(event.reserved().order_id());
      const std::string* closed_order = event.has_released()    ? &event.released().order_id()
                                        : event.has_committed() ? &event.committed().order_id()
                                                                : nullptr;
      if (closed_order) std::erase(sku.open, *closed_order);
    }
    ASSERT_EQ(std::nullopt, check_invariants(sku.state))
        << "step " << step << ": " << render(decision);
    if (sku.state.closed.size() == limits::sku_closed_reservations_max) {
      ++counts[closed_window_full];
    }

    // Invariant 3 of the architecture, at the aggregate: the same command again changes
    // nothing (a redelivery, a retried saga step).
    const Decision repeat = decide(sku.state, command, step);
    ASSERT_TRUE(repeat.events.empty()) << "step " << step << ": repeat gave " << render(repeat);

    if (const auto* stock_command = std::get_if<StockCommand>(&command)) {
      const StockReply reply = answer(sku.state, *stock_command, decision);
      ASSERT_EQ(sku.state.available(), reply.available());
      if (decision.rejected()) {
        ASSERT_EQ(decision.rejection->code == RejectionCode::kOutOfStock
                      ? StockReply::INSUFFICIENT
                      : StockReply::REFUSED,
                  reply.status());
        ASSERT_EQ(0, reply.qty());
      } else {
        if (reply.status() == StockReply::RESERVED) {
          ASSERT_EQ(sku.state.reservations.at(stock_command->order_id()), reply.qty());
        } else {
          ASSERT_FALSE(sku.state.reservations.contains(stock_command->order_id()));
        }
        ASSERT_EQ(reply.status(), answer(sku.state, *stock_command, repeat).status())
            << "step " << step;
      }
    }

    if ((step + 1) % rebuild_every == 0) {
      for (const Sku& each : skus) {
        SCOPED_TRACE(each.key + " at step " + std::to_string(step));
        expect_rebuilds_equal(each.state, each.log, each.key);
      }
    }
  }

  for (const Sku& sku : skus) {
    EXPECT_LE(sku.state.shipped_total, sku.state.received_total + sku.state.adjusted_in_total);
  }
  // The run went down every path, the full closed window included.
  for (int outcome = 0; outcome < outcomes; ++outcome) {
    EXPECT_GT(counts[outcome], 0) << "outcome " << outcome << " never happened";
  }
}

}  // namespace
}  // namespace ffe::sku
