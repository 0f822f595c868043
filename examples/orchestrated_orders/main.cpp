// An XState machine whose actions and guards are C++ and an SCXML machine on the ECMAScript
// datamodel, run together by an orchestrator on the memory store (docs/orchestrator.md shows this
// program): orders send `RECORD` to the ledger machine with XState's `sendTo`, an outside retry
// with the same idempotency key is not applied twice, and every persisted change is watched. On
// simulated time, so it runs as a test: it checks its outcome and exits non-zero when it is wrong.
#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/orchestrator/orchestrator.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/store/memory_state_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>

#include <filesystem>
#include <iostream>
#include <string>

namespace {

std::filesystem::path find(const char* argv0, const char* name) {
  auto beside = std::filesystem::path(argv0).parent_path() / name;
  return std::filesystem::exists(beside) ? beside : std::filesystem::path(XSN_EXAMPLE_SOURCE_DIR) / name;
}

int failures = 0;
void expect(bool ok, const std::string& what) {
  std::cout << (ok ? "  ok: " : "  FAILED: ") << what << "\n";
  if (!ok) ++failures;
}

}  // namespace

int main(int, char** argv) {
  auto order = xsn::load_xstate(find(argv[0], "shop_order.json"));
  auto ledger = xsn::load_scxml(find(argv[0], "ledger.scxml"));
  for (const auto* loaded : {&order.errors, &ledger.errors})
    for (const auto& d : *loaded) std::cerr << d.to_string() << "\n";
  if (!order || !ledger) return 2;

  xsn::implementations impl;  // XState's setup({actions, guards}), in C++
  impl.action("addItem", [](xsn::value& ctx, const xsn::event& ev, const xsn::value&) {
    auto& c = ctx.as_object();
    c["total"] = c["total"].to_number<double>() + ev.data.at("price").to_number<double>();
    c["items"] = c["items"].to_number<std::int64_t>() + 1;
  });
  impl.guard("hasItems", [](const xsn::value& ctx, const xsn::event&, const xsn::value&) {
    return ctx.at("items").to_number<std::int64_t>() > 0;
  });

  boost::asio::io_context io;
  xsn::manual_clock clock;  // xsn::asio_clock in production
  xsn::memory_state_store store(io.get_executor(), clock);
  xsn::channel_event_bus bus(io.get_executor(), clock);
  xsn::orchestrator orch(io.get_executor(), clock, bus, store);
  if (auto r = orch.add_document("order", order.chart, impl); !r) {
    std::cerr << r.error().message << "\n";
    return 2;
  }
  if (auto r = orch.add_document("ledger", ledger.chart); !r) {
    std::cerr << r.error().message << "\n";
    return 2;
  }
  int changes = 0;
  auto watch = orch.watch_changes([&changes](const xsn::machine_change& c) {
    ++changes;
    std::cout << "  persisted " << c.id << " v" << c.version << " " << xsn::to_string(c.status) << "\n";
  });
  auto settle = [&io] {
    io.restart();
    io.poll();
  };
  auto report = [](const char* what) {
    return [what](std::error_code ec, const xsn::send_result& r) {
      std::cout << what << ": " << (ec ? ec.message() : r.duplicate ? "duplicate" : r.transitioned ? "taken" : "ignored")
                << ", " << xsn::to_string(r.status) << "\n";
    };
  };

  orch.async_create("ledger", "ledger", [](std::error_code ec) { expect(!ec, "ledger created"); });
  orch.async_create("o1", "order", [](std::error_code ec) { expect(!ec, "order o1 created"); });
  settle();
  bool refused = false;
  orch.async_send("o1", xsn::event("CHECKOUT"), [&refused](std::error_code ec, const xsn::send_result& r) {
    refused = !ec && !r.transitioned;  // hasItems: the cart is empty
  });
  settle();
  expect(refused, "an empty cart cannot check out");
  for (int attempt = 0; attempt < 2; ++attempt)  // a client retry: same key, applied once
    orch.async_send("o1", xsn::event("ADD", boost::json::object{{"price", 12.5}}), xsn::send_options{"cart-1-item-1"},
                    report("ADD"));
  orch.async_send("o1", xsn::event("CHECKOUT"), report("CHECKOUT"));
  settle();

  bool checked = false;
  orch.async_snapshot("ledger", [&checked](std::error_code ec, xsn::value v) {
    expect(!ec && v.at("snapshot").at("context").at("recorded") == 1,
           "the ledger recorded the order once: " + boost::json::serialize(v.at("snapshot").at("context")));
    checked = true;
  });
  orch.async_snapshot("o1", [](std::error_code ec, xsn::value v) {
    expect(!ec && v.at("status") == "done" && v.at("snapshot").at("context").at("items") == 1,
           "the order is paid with one item: " + boost::json::serialize(v.at("snapshot").at("context")));
  });
  settle();
  expect(checked, "snapshots answered");
  expect(changes >= 4, "changes watched: " + std::to_string(changes));
  auto h = orch.health();
  expect(h.duplicates == 1 && h.write_failures == 0 && h.outbox == 0, "one duplicate dropped, nothing left in outboxes");

  bool shut = false;
  orch.async_shutdown(std::chrono::seconds(1), [&shut](std::error_code ec) { shut = !ec; });
  io.restart();
  io.run();  // returns once the orchestrator has stopped
  expect(shut, "shut down");
  std::cout << (failures ? "FAILED\n" : "all checks passed\n");
  return failures ? 1 : 0;
}
