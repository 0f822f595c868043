#pragma once
// An orchestrator with its bus and store on one io_context that the test drives (manual clock),
// shared by the orchestrator tests. The store stands for an external one: it survives `crash()`.
#include "catch.hpp"

#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/orchestrator/orchestrator.hpp>
#include <xsn/store/memory_state_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <vector>

namespace xsn_test {

/// An orchestrator with its bus and store, all on one io_context driven by the test. The store
/// stands for an external one: it survives `crash()`, the bus and orchestrator do not.
struct fixture {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::memory_state_store store{ioc.get_executor(), clk};
  std::optional<xsn::channel_event_bus> bus;
  std::optional<xsn::orchestrator> orch;

  /// Adds the documents of a (re)booted orchestrator; set before the first `boot`.
  std::function<void(xsn::orchestrator&)> documents;
  xsn::orchestrator_options options;

  explicit fixture(std::function<void(xsn::orchestrator&)> docs, xsn::orchestrator_options o = {})
      : documents(std::move(docs)), options(std::move(o)) {
    boot();
  }
  ~fixture() { crash(); }
  void boot() {
    bus.emplace(ioc.get_executor(), clk);
    orch.emplace(ioc.get_executor(), clk, *bus, store, options);
    if (documents) documents(*orch);
  }
  /// The process dies: nothing is shut down or persisted any more.
  void crash() {
    orch.reset();
    if (bus) bus->shutdown();
    settle();
    bus.reset();
  }
  /// Runs the io_context until `f` is ready (no handler left means it never will be).
  template <class T>
  T wait(std::future<T>& f) {
    ioc.restart();
    while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      if (ioc.run_one() == 0) FAIL("the operation never completed");
    }
    return f.get();
  }
  std::error_code create(const std::string& id, const std::string& doc) {
    std::promise<std::error_code> p;
    auto f = p.get_future();
    orch->async_create(id, doc, [&p](std::error_code ec) { p.set_value(ec); });
    return wait(f);
  }
  std::error_code send(const std::string& id, const std::string& ev) { return send_full(id, xsn::event(ev)).first; }
  std::pair<std::error_code, xsn::send_result> send_full(const std::string& id, xsn::event ev, xsn::send_options o = {}) {
    std::promise<std::pair<std::error_code, xsn::send_result>> p;
    auto f = p.get_future();
    orch->async_send(id, std::move(ev), std::move(o),
                     [&p](std::error_code ec, xsn::send_result r) { p.set_value({ec, std::move(r)}); });
    return wait(f);
  }
  std::error_code shutdown() {
    std::promise<std::error_code> p;
    auto f = p.get_future();
    orch->async_shutdown(std::chrono::seconds(1), [&p](std::error_code ec) { p.set_value(ec); });
    return wait(f);
  }
  std::size_t restore() {
    std::promise<std::pair<std::error_code, std::size_t>> p;
    auto f = p.get_future();
    orch->async_restore([&p](std::error_code ec, std::size_t n) { p.set_value({ec, n}); });
    auto [ec, n] = wait(f);
    REQUIRE_FALSE(ec);
    return n;
  }
  void settle() {
    ioc.restart();
    ioc.poll();
  }
  void advance(std::chrono::milliseconds d) {
    auto target = clk.now() + d;
    settle();
    while (clk.fire_next(target)) settle();
    clk.advance_to(target);
    settle();
  }
  std::vector<std::string> states(const std::string& id) {
    settle();
    auto st = orch->query(id);
    REQUIRE(st);
    return st->states;
  }
  /// Machine `id`'s stored record (`{document, snapshot, ...}`).
  boost::json::value stored(const std::string& id) {
    std::promise<std::optional<xsn::stored_value>> p;
    auto f = p.get_future();
    store.async_get("xsn/machines/" + id, [&p](std::error_code, std::optional<xsn::stored_value> v) { p.set_value(v); });
    auto v = wait(f);
    REQUIRE(v);
    return boost::json::parse(v->value);
  }
  /// The counter machine's `n`, read from its stored snapshot.
  std::int64_t stored_n(const std::string& id) {
    return stored(id).at("snapshot").at("context").at("n").to_number<std::int64_t>();
  }
};

}  // namespace xsn_test
