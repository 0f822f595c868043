// The orchestrator's durable messages (outbox, inbox, idempotency keys), batched writes,
// per-document bindings and what it shows of its machines.
#include <xsn/orchestrator/orchestrator.hpp>

#include "catch.hpp"
#include "names.hpp"
#include "orchestrator_fixture.hpp"

#include <xsn/parse/scxml.hpp>
#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>

#include <boost/json/serialize.hpp>

#include <string>
#include <vector>

namespace {

using states_t = std::vector<std::string>;

std::shared_ptr<const xsn::statechart> scxml(const std::string& body, const std::string& attrs = "") {
  auto r = xsn::parse_scxml("<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\"" + attrs + ">" + body +
                                "</scxml>",
                            "msg.scxml");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

std::shared_ptr<const xsn::statechart> xstate(const std::string& json) {
  auto r = xsn::parse_xstate(json, "msg.json");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

// `fire` sends one `inc` to the counter; `burst` sends three in one macrostep; an undeliverable
// send lands in `failed`.
const char* sender_doc = R"(<state id="ready">
    <transition event="fire"><send target="xsn:counter" event="inc"/></transition>
    <transition event="burst"><send target="xsn:counter" event="inc"/><send target="xsn:counter" event="inc"/>
      <send target="xsn:counter" event="inc"/></transition>
    <transition event="to_bus"><send target="bus:out/topic" event="note"/></transition>
    <transition event="error.communication" target="failed"/></state><state id="failed"/>)";

const char* counter_doc = R"(<datamodel><data id="n" expr="0"/></datamodel>
  <state id="counting"><transition event="inc"><assign location="n" expr="n + 1"/></transition>
    <transition event="stop" target="end"/></state><final id="end"/>)";

struct fixture : xsn_test::fixture {
  explicit fixture(xsn::orchestrator_options o = {})
      : xsn_test::fixture(
            [](xsn::orchestrator& orch) {
              REQUIRE(orch.add_document("sender", scxml(sender_doc)));
              REQUIRE(orch.add_document("counter", scxml(counter_doc, " datamodel=\"ecmascript\"")));
            },
            std::move(o)) {}
  void two() {
    REQUIRE_FALSE(create("s", "sender"));
    REQUIRE_FALSE(create("counter", "counter"));
  }
  std::int64_t live_n() {
    std::promise<std::pair<std::error_code, xsn::value>> p;
    auto f = p.get_future();
    orch->async_snapshot("counter", [&p](std::error_code ec, xsn::value v) { p.set_value({ec, std::move(v)}); });
    auto [ec, v] = wait(f);
    REQUIRE_FALSE(ec);
    return v.at("snapshot").at("context").at("n").to_number<std::int64_t>();
  }
  void put_raw(const std::string& id, const std::string& text) {
    std::promise<std::error_code> p;
    auto f = p.get_future();
    store.async_put("xsn/machines/" + id, text, [&p](std::error_code ec, xsn::store_version) { p.set_value(ec); });
    REQUIRE_FALSE(wait(f));
  }
};

}  // namespace

TEST_CASE("orchestrator_messages: a message is in the sender's stored outbox before it is applied, once") {
  fixture fx;
  fx.two();
  REQUIRE_FALSE(fx.send("s", "fire"));
  fx.settle();
  CHECK(fx.live_n() == 1);
  // The sender's write carried the message; the receiver's carries the sequence it applied.
  auto sender = fx.stored("s");
  REQUIRE(sender.as_object().contains("outbox"));
  CHECK(sender.at("outbox").as_array().size() == 1);
  CHECK(sender.at("outbox").at(0).at("to") == "xsn:counter");
  CHECK(sender.at("outbox").at(0).at("seq") == 1);
  CHECK(fx.stored("counter").at("inbox").at("s") == 1);
  CHECK(fx.stored_n("counter") == 1);
  // Confirmed: the sender's outbox is empty in memory (written with its next write).
  CHECK(fx.orch->query("s")->outbox == 0);
  CHECK(fx.orch->health().outbox == 0);
}

TEST_CASE("orchestrator_messages: restore delivers an outbox again and the receiver drops what it applied") {
  fixture fx;
  fx.two();
  REQUIRE_FALSE(fx.send("s", "fire"));
  fx.settle();
  const auto counter_after_one = boost::json::serialize(fx.stored("counter"));
  REQUIRE_FALSE(fx.send("s", "burst"));
  fx.settle();
  CHECK(fx.stored_n("counter") == 4);
  // The receiver's writes of the burst are lost (as when the process died before them): its
  // record goes back to n = 1; the sender's record still holds the burst in its outbox.
  fx.put_raw("counter", counter_after_one);
  fx.crash();
  fx.boot();
  CHECK(fx.restore() == 2);
  fx.settle();
  CHECK(fx.live_n() == 4);  // the burst (messages 2..4, still in the sender's stored outbox) applied again
  CHECK(fx.stored_n("counter") == 4);
  CHECK(fx.orch->health().duplicates == 0);
  // A second crash and restore changes nothing: the outbox is delivered again, and dropped.
  fx.crash();
  fx.boot();
  CHECK(fx.restore() == 2);
  fx.settle();
  CHECK(fx.live_n() == 4);
  CHECK(fx.orch->health().duplicates == 3);
}

TEST_CASE("orchestrator_messages: a full outbox fails the send with error.communication in the sender") {
  xsn::orchestrator_options o;
  o.outbox_capacity = 2;
  fixture fx(o);
  fx.two();
  REQUIRE_FALSE(fx.send("s", "burst"));  // the third send finds the outbox full
  fx.settle();
  CHECK(fx.states("s") == states_t{"failed"});
  CHECK(fx.live_n() == 2);  // nothing already accepted is lost
}

TEST_CASE("orchestrator_messages: a send to a machine that does not exist is error.communication") {
  fixture fx;
  REQUIRE_FALSE(fx.create("s", "sender"));
  REQUIRE_FALSE(fx.send("s", "fire"));  // no machine `counter`
  CHECK(fx.states("s") == states_t{"failed"});
}

TEST_CASE("orchestrator_messages: an idempotency key is applied once, across a restart") {
  xsn::orchestrator_options o;
  o.idempotency_keys = 2;
  fixture fx(o);
  fx.two();
  auto first = fx.send_full("counter", xsn::event("inc"), {"k1"});
  REQUIRE_FALSE(first.first);
  CHECK_FALSE(first.second.duplicate);
  CHECK(first.second.transitioned);
  auto again = fx.send_full("counter", xsn::event("inc"), {"k1"});
  REQUIRE_FALSE(again.first);
  CHECK(again.second.duplicate);
  CHECK_FALSE(again.second.transitioned);
  CHECK(fx.stored_n("counter") == 1);
  fx.crash();
  fx.boot();
  CHECK(fx.restore() == 2);
  CHECK(fx.send_full("counter", xsn::event("inc"), {"k1"}).second.duplicate);  // remembered in the snapshot
  CHECK(fx.live_n() == 1);
  // Only the 2 most recent keys are kept: k1 is forgotten after k2 and k3.
  REQUIRE_FALSE(fx.send_full("counter", xsn::event("inc"), {"k2"}).first);
  REQUIRE_FALSE(fx.send_full("counter", xsn::event("inc"), {"k3"}).first);
  CHECK_FALSE(fx.send_full("counter", xsn::event("inc"), {"k1"}).second.duplicate);
  CHECK(fx.live_n() == 4);
}

TEST_CASE("orchestrator_messages: a bus message goes out after the sender's write, with sender and sequence") {
  fixture fx;
  REQUIRE_FALSE(fx.create("s", "sender"));
  std::error_code ec;
  auto sub = fx.bus->subscribe("out/topic", {16, xsn::overflow_policy::fail}, ec);
  REQUIRE_FALSE(ec);
  REQUIRE_FALSE(fx.send("s", "to_bus"));
  REQUIRE_FALSE(fx.send("s", "to_bus"));
  xsn::bus_message got;
  REQUIRE(sub->try_receive(got));
  CHECK(got.event.name == "note");
  CHECK(got.sender == "s");
  CHECK(got.sequence == 1);
  REQUIRE(sub->try_receive(got));
  CHECK(got.sequence == 2);
  CHECK_FALSE(sub->try_receive(got));
  CHECK(fx.orch->query("s")->outbox == 0);  // published: gone from the outbox
}

TEST_CASE("orchestrator_messages: outside bus messages with sender and sequence are applied once") {
  fixture fx;
  fx.two();
  auto msg = [](std::uint64_t seq) {
    xsn::bus_message m("machine/counter", xsn::event("inc"));
    m.sender = "upstream";
    m.sequence = seq;
    return m;
  };
  REQUIRE_FALSE(fx.bus->publish(msg(1)));
  REQUIRE_FALSE(fx.bus->publish(msg(2)));
  REQUIRE_FALSE(fx.bus->publish(msg(2)));  // a repeat
  REQUIRE_FALSE(fx.bus->publish(msg(1)));  // an old one
  fx.settle();
  CHECK(fx.live_n() == 2);
  CHECK(fx.orch->health().duplicates == 2);
  CHECK(fx.stored("counter").at("inbox").at("upstream") == 2);
}

TEST_CASE("orchestrator_messages: machines that change together are written in one store batch") {
  fixture fx;
  for (int i = 0; i < 50; ++i) REQUIRE_FALSE(fx.create(xsn_test::named("c", i), "counter"));
  const auto before = fx.orch->health();
  int acked = 0;
  for (int i = 0; i < 50; ++i)
    fx.orch->async_send(xsn_test::named("c", i), xsn::event("inc"), [&acked](std::error_code ec, const xsn::send_result&) {
      if (!ec) ++acked;
    });
  fx.settle();
  CHECK(acked == 50);
  const auto after = fx.orch->health();
  CHECK(after.writes - before.writes == 50);
  CHECK(after.batches - before.batches == 1);
  for (int i = 0; i < 50; i += 7) CHECK(fx.stored_n(xsn_test::named("c", i)) == 1);
}

TEST_CASE("orchestrator_messages: a batch is bounded in entries") {
  xsn::orchestrator_options o;
  o.batch_entries = 8;
  o.batches_in_flight = 1;
  fixture fx(o);
  for (int i = 0; i < 20; ++i) REQUIRE_FALSE(fx.create(xsn_test::named("c", i), "counter"));
  const auto before = fx.orch->health();
  for (int i = 0; i < 20; ++i)
    fx.orch->async_send(xsn_test::named("c", i), xsn::event("inc"), [](std::error_code, const xsn::send_result&) {});
  fx.settle();
  const auto after = fx.orch->health();
  CHECK(after.writes - before.writes == 20);
  CHECK(after.batches - before.batches == 3);  // 8 + 8 + 4
}

TEST_CASE("orchestrator_messages: async_send tells the status and whether a transition took the event") {
  fixture fx;
  fx.two();
  auto taken = fx.send_full("counter", xsn::event("inc"));
  REQUIRE_FALSE(taken.first);
  CHECK(taken.second.transitioned);
  CHECK(taken.second.status == xsn::session_status::active);
  CHECK(taken.second.states == states_t{"counting"});
  auto ignored = fx.send_full("counter", xsn::event("no.such.event"));
  REQUIRE_FALSE(ignored.first);
  CHECK_FALSE(ignored.second.transitioned);
  // Two sends acknowledged by one write: each tells the machine as its own macrostep left it.
  std::vector<xsn::send_result> both;
  for (const char* name : {"inc", "stop"})
    fx.orch->async_send("counter", xsn::event(name), [&both](std::error_code ec, xsn::send_result r) {
      REQUIRE_FALSE(ec);
      both.push_back(std::move(r));
    });
  fx.settle();
  REQUIRE(both.size() == 2);
  CHECK(both[0].status == xsn::session_status::active);
  CHECK(both[0].states == states_t{"counting"});
  CHECK(both[1].status == xsn::session_status::done);
  CHECK(both[1].states == states_t{"end"});
  CHECK(fx.orch->query("counter")->status == xsn::session_status::done);
  CHECK(fx.send("counter", "inc") == xsn::errc::not_running);
}

TEST_CASE("orchestrator_messages: changes are watched, snapshots queried, inspection names machines") {
  std::vector<std::string> inspected;
  int user_macrosteps = 0;
  xsn_test::fixture fx([&](xsn::orchestrator& o) {
    xsn::document_options d;
    d.session.inspect = [&](const xsn::inspection_event& e) {
      if (e.kind == xsn::inspection_kind::event) inspected.emplace_back(e.session_id);
    };
    d.session.on_macrostep = [&](xsn::session&) { ++user_macrosteps; };  // called, not replaced
    REQUIRE(o.add_document("counter", scxml(counter_doc, " datamodel=\"ecmascript\""), d));
  });
  std::vector<xsn::machine_change> changes;
  auto w = fx.orch->watch_changes([&](const xsn::machine_change& c) { changes.push_back(c); });
  REQUIRE_FALSE(fx.create("m1", "counter"));
  REQUIRE_FALSE(fx.send("m1", "inc"));
  REQUIRE(changes.size() == 2);
  CHECK(changes[1].id == "m1");
  CHECK(changes[1].status == xsn::session_status::active);
  CHECK(changes[1].version == fx.orch->query("m1")->version);
  CHECK(changes[1].version > changes[0].version);
  CHECK(user_macrosteps == 2);
  REQUIRE_FALSE(inspected.empty());
  CHECK(inspected.back() == "m1");
  std::promise<std::pair<std::error_code, xsn::value>> p;
  auto f = p.get_future();
  fx.orch->async_snapshot("m1", [&p](std::error_code ec, xsn::value v) { p.set_value({ec, std::move(v)}); });
  auto [ec, snap] = fx.wait(f);
  REQUIRE_FALSE(ec);
  CHECK(snap.at("id") == "m1");
  CHECK(snap.at("status") == "active");
  CHECK(snap.at("snapshot").at("context").at("n") == 1);
  CHECK(snap.at("snapshot").at("value") == "counting");
  w.reset();
  REQUIRE_FALSE(fx.send("m1", "inc"));
  CHECK(changes.size() == 2);  // unwatched
  std::promise<std::pair<std::error_code, xsn::value>> q;
  auto g = q.get_future();
  fx.orch->async_snapshot("nope", [&q](std::error_code e, xsn::value v) { q.set_value({e, std::move(v)}); });
  CHECK(fx.wait(g).first == xsn::errc::unknown_machine);
}

// ---- XState machines with C++ bindings ----

namespace {

const char* order_json = R"({
  "id": "order", "initial": "open", "context": {"items": 0},
  "states": {
    "open": {"on": {"ADD": {"actions": "addItem"}, "CHECKOUT": {"target": "paid", "guard": "hasItems"}}},
    "paid": {"entry": {"type": "sendTo", "to": "ledger", "event": {"type": "RECORD"}}, "type": "final"}
  }})";

const char* ledger_json = R"({
  "id": "ledger", "initial": "on", "context": {"records": 0},
  "states": {"on": {"on": {"RECORD": {"actions": "count"}}}}})";

xsn::implementations order_impl() {
  xsn::implementations impl;
  impl.action("addItem", [](xsn::value& ctx, const xsn::event&, const xsn::value&) {
    ctx.as_object()["items"] = ctx.at("items").to_number<std::int64_t>() + 1;
  });
  impl.guard("hasItems", [](const xsn::value& ctx, const xsn::event&, const xsn::value&) {
    return ctx.at("items").to_number<std::int64_t>() > 0;
  });
  return impl;
}

xsn::implementations ledger_impl() {
  xsn::implementations impl;
  impl.action("count", [](xsn::value& ctx, const xsn::event&, const xsn::value&) {
    ctx.as_object()["records"] = ctx.at("records").to_number<std::int64_t>() + 1;
  });
  return impl;
}

}  // namespace

TEST_CASE("orchestrator_messages: XState machines with C++ bindings run beside SCXML ones and sendTo machines") {
  xsn_test::fixture fx([](xsn::orchestrator& o) {
    REQUIRE(o.add_document("order", xstate(order_json), order_impl()));
    REQUIRE(o.add_document("ledger", xstate(ledger_json), ledger_impl()));
    REQUIRE(o.add_document("counter", scxml(counter_doc, " datamodel=\"ecmascript\"")));
  });
  REQUIRE_FALSE(fx.create("ledger", "ledger"));
  REQUIRE_FALSE(fx.create("o1", "order"));
  REQUIRE_FALSE(fx.create("c", "counter"));
  CHECK_FALSE(fx.send_full("o1", xsn::event("CHECKOUT")).second.transitioned);  // hasItems refuses
  REQUIRE_FALSE(fx.send("o1", "ADD"));
  auto paid = fx.send_full("o1", xsn::event("CHECKOUT"));
  REQUIRE_FALSE(paid.first);
  CHECK(paid.second.status == xsn::session_status::done);
  fx.settle();
  CHECK(fx.stored("ledger").at("snapshot").at("context").at("records") == 1);  // sendTo another machine
  CHECK(fx.stored("o1").at("snapshot").at("context").at("items") == 1);
  REQUIRE_FALSE(fx.send("c", "inc"));  // the SCXML machine keeps its own (ECMAScript) datamodel
  CHECK(fx.stored_n("c") == 1);
  fx.crash();
  fx.boot();
  CHECK(fx.restore() == 3);
  fx.settle();
  CHECK(fx.stored("ledger").at("snapshot").at("context").at("records") == 1);  // not recorded twice
}

TEST_CASE("orchestrator_messages: a document whose datamodel does not match what runs it is refused") {
  xsn_test::fixture fx([](xsn::orchestrator&) {});
  auto& o = *fx.orch;
  auto ecma = scxml(counter_doc, " datamodel=\"ecmascript\"");
  // C++ implementations bind XState machines only.
  auto r1 = o.add_document("a", ecma, order_impl());
  REQUIRE_FALSE(r1);
  CHECK(r1.error().message.find("SCXML") != std::string::npos);
  // An ECMAScript document on the XState datamodel.
  xsn::document_options d;
  d.session.make_datamodel = xsn::xstate_datamodel(nullptr);
  auto r2 = o.add_document("b", ecma, d);
  REQUIRE_FALSE(r2);
  CHECK(r2.error().message.find("'ecmascript'") != std::string::npos);
  // An XState machine whose actions are not bound.
  auto r3 = o.add_document("c", xstate(order_json));
  REQUIRE_FALSE(r3);
  CHECK(r3.error().message.find("addItem") != std::string::npos);
  auto r4 = o.add_document("d", xstate(order_json), ledger_impl());
  REQUIRE_FALSE(r4);
  // The orchestrator's own hooks cannot be set.
  xsn::document_options routed;
  routed.session.route = [](xsn::session&, const std::string&, xsn::event) { return true; };
  CHECK_FALSE(o.add_document("e", ecma, routed));
  CHECK(o.add_document("f", ecma));
  CHECK(fx.create("x", "a") == xsn::errc::unknown_document);  // nothing was added under a refused name
}

TEST_CASE("orchestrator_messages: a write that lost a compare-and-set is written again with the current version") {
  fixture fx;
  fx.two();
  REQUIRE_FALSE(fx.send("counter", "inc"));
  // Someone else writes the machine's key: the next write conflicts, learns the version from the
  // conflict and wins on its next attempt (the process that runs a machine owns its state).
  const auto theirs = boost::json::serialize(fx.stored("counter"));
  fx.put_raw("counter", theirs);
  auto r = fx.send_full("counter", xsn::event("inc"));
  REQUIRE_FALSE(r.first);
  CHECK(fx.orch->health().write_conflicts == 1);
  CHECK(fx.stored_n("counter") == 2);
  REQUIRE_FALSE(fx.send("counter", "inc"));  // and goes on from there without conflicts
  CHECK(fx.orch->health().write_conflicts == 1);
  CHECK(fx.stored_n("counter") == 3);
}

TEST_CASE("orchestrator_messages: stopping a machine fails the sends still waiting for its write") {
  fixture fx;
  fx.two();
  std::optional<std::error_code> first, second;
  fx.orch->async_send("counter", xsn::event("inc"), [&](std::error_code ec, const xsn::send_result&) { first = ec; });
  fx.orch->async_stop("counter", false, [&](std::error_code ec) { second = ec; });
  fx.settle();
  REQUIRE(first);
  REQUIRE(second);
  CHECK_FALSE(*second);
  CHECK(*first == xsn::errc::not_running);  // its write never started: the machine is gone
}
