// The fab cell of examples/fab_cell (a load port, a transfer robot and a process chamber) with its
// machines kept in Redis: a first orchestrator processes two wafers and stops; a second one, with
// a store object and connections of its own as a new process would have, restores the three
// machines from Redis and processes two more.
//
// Usage: redis_orchestrator [--own-server | HOST PORT]
//   --own-server   starts a private redis-server on a free loopback port (what ctest runs)
//   HOST PORT      uses that Redis (default 127.0.0.1 6379), under a key prefix of its own
// Time is simulated with a manual clock, so the run is fast and repeatable.
#include <xsn/advanced/redis_state_store.hpp>
#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/orchestrator/orchestrator.hpp>
#include <xsn/parse/scxml.hpp>

#include "redis_server.hpp"  // tests/support: only for --own-server

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

using namespace std::chrono_literals;

std::filesystem::path find_document(const char* argv0, const std::string& name) {
  auto beside = std::filesystem::path(argv0).parent_path() / "fab_cell.d" / name;  // (fab_cell's copies)
  if (std::filesystem::exists(beside)) return beside;
  return std::filesystem::path(XSN_EXAMPLE_SOURCE_DIR) / name;
}

/// The io_context and the simulated clock every part runs on.
struct world {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;

  /// Runs until nothing is left to do: no handler ready and no reply awaited from Redis. Waiting
  /// for a reply blocks on the socket; 10 s without any completion means Redis stopped answering.
  void settle(const xsn::advanced::redis_state_store& store) {
    ioc.restart();
    for (;;) {
      if (ioc.poll() > 0) continue;
      if (store.pending() == 0) return;
      if (ioc.run_one_for(10s) == 0) throw std::runtime_error("Redis stopped answering");
    }
  }

  /// Runs until `f` is ready, then returns its value.
  template <typename T>
  T wait(const xsn::advanced::redis_state_store& store, std::future<T> f) {
    while (f.wait_for(0s) != std::future_status::ready) {
      settle(store);
      if (f.wait_for(0s) != std::future_status::ready && ioc.run_one_for(10s) == 0) {
        throw std::runtime_error("stalled");
      }
    }
    return f.get();
  }
};

/// One process of the cell: its own store object (its own connections), bus and orchestrator.
struct cell_process {
  world& w;
  xsn::advanced::redis_state_store store;
  xsn::channel_event_bus bus;
  xsn::orchestrator orch;

  cell_process(world& wd, const char* argv0, const xsn::advanced::redis_store_options& redis)
      // The one line that moves the machines from memory to Redis: in examples/fab_cell it reads
      //   xsn::memory_state_store store(ioc.get_executor(), clk);
      : w(wd), store(w.ioc.get_executor(), w.clk, redis),
        bus(w.ioc.get_executor(), w.clk), orch(w.ioc.get_executor(), w.clk, bus, store) {
    std::promise<std::error_code> connected;
    store.async_connect([&connected](std::error_code ec) { connected.set_value(ec); });
    if (auto ec = w.wait(store, connected.get_future())) {
      throw std::runtime_error("cannot reach Redis: " + store.last_error());
    }
    for (const char* doc : {"load_port", "robot", "chamber"}) {
      auto loaded = xsn::load_scxml(find_document(argv0, std::string(doc) + ".scxml"));
      if (!loaded) {
        for (auto& d : loaded.errors) std::cerr << d.to_string() << "\n";
        throw std::runtime_error("cannot load " + std::string(doc));
      }
      orch.add_document(doc, loaded.chart);
    }
  }
  ~cell_process() { bus.shutdown(); }

  void settle() { w.settle(store); }

  void send(const char* id, const char* event) {
    std::promise<std::error_code> p;
    orch.async_send(id, xsn::event(event), [&p](std::error_code ec, const xsn::send_result&) { p.set_value(ec); });
    if (auto ec = w.wait(store, p.get_future())) throw std::runtime_error(std::string(event) + ": " + ec.message());
  }

  /// One wafer: a carrier is placed, then simulated time passes in 500 ms steps.
  void process_wafer() {
    send("load_port", "carrier.placed");
    for (int k = 0; k < 8; ++k) {
      const auto until = w.clk.now() + 500ms;
      while (w.clk.fire_next(until)) settle();
      w.clk.advance_to(until);
      settle();
    }
  }

  void show(const std::string& when) {
    std::cout << when << ":";
    for (const auto& id : orch.list()) {
      const auto st = orch.query(id);
      std::cout << "  " << id << "=" << (st->states.empty() ? "-" : st->states.front());
    }
    std::cout << "\n";
  }

  /// Persists every machine and stops (what a process does before it exits).
  void stop() {
    std::promise<std::error_code> down;
    orch.async_shutdown(1s, [&down](std::error_code ec) { down.set_value(ec); });
    if (auto ec = w.wait(store, down.get_future())) throw std::runtime_error("shutdown: " + ec.message());
  }

  /// Closes the bus and the store: the connections to Redis and their timers keep the io_context
  /// busy until then. Afterwards `run()` returns, nothing of this process being left on it.
  void close() {
    bus.shutdown();
    std::promise<std::error_code> closed;
    store.async_close([&closed](std::error_code ec) { closed.set_value(ec); });
    if (auto ec = w.wait(store, closed.get_future())) throw std::runtime_error("close: " + ec.message());
    w.ioc.restart();
    w.ioc.run();
  }

  /// The machines' records in Redis: key and version (the store's compare-and-set version).
  void show_stored() {
    std::promise<std::vector<xsn::state_store::entry>> listed;
    store.async_list("xsn/machines/", [&listed](std::error_code, std::vector<xsn::state_store::entry> v) {
      listed.set_value(std::move(v));
    });
    const auto entries = w.wait(store, listed.get_future());
    std::cout << "  in Redis:";
    for (const auto& [key, value] : entries) std::cout << "  " << key << " (version " << value.version << ")";
    std::cout << "\n";
  }

  /// The load port's counter as stored in Redis.
  int processed_in_redis() {
    std::promise<std::optional<xsn::stored_value>> got;
    store.async_get("xsn/machines/load_port",
                    [&got](std::error_code, std::optional<xsn::stored_value> v) { got.set_value(std::move(v)); });
    const auto stored = w.wait(store, got.get_future());
    if (!stored) return -1;
    return boost::json::parse(stored->value).at("snapshot").at("context").at("processed").to_number<int>();
  }
};

int run(const char* argv0, const xsn::advanced::redis_store_options& redis) {
  world w;
  {
    std::cout << "process 1 (store prefix " << redis.key_prefix << ")\n";
    cell_process p(w, argv0, redis);
    for (const char* id : {"load_port", "robot", "chamber"}) {
      std::promise<std::error_code> created;
      p.orch.async_create(id, id, [&created](std::error_code ec) { created.set_value(ec); });
      if (auto ec = w.wait(p.store, created.get_future())) {
        throw std::runtime_error("create " + std::string(id) + ": " + ec.message());
      }
    }
    p.show("  created");
    for (int wafer = 1; wafer <= 2; ++wafer) {
      p.process_wafer();
      p.show("  wafer " + std::to_string(wafer));
    }
    p.stop();
    p.show_stored();
    p.close();
  }
  std::cout << "process 2\n";
  cell_process p(w, argv0, redis);
  std::promise<std::pair<std::error_code, std::size_t>> restored;
  p.orch.async_restore([&restored](std::error_code ec, std::size_t n) { restored.set_value({ec, n}); });
  const auto [ec, n] = w.wait(p.store, restored.get_future());
  if (ec) throw std::runtime_error("restore: " + ec.message());
  p.settle();
  std::cout << "  restored " << n << " machines from Redis\n";
  p.show("  after the restart");
  for (int wafer = 3; wafer <= 4; ++wafer) {
    p.process_wafer();
    p.show("  wafer " + std::to_string(wafer));
  }
  p.stop();
  const int processed = p.processed_in_redis();
  p.close();
  std::cout << "wafers processed: " << processed << " of 4\n";
  return n == 3 && processed == 4 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    xsn::advanced::redis_store_options redis;
    redis.key_prefix = "xsn-example:" + std::to_string(::getpid()) + ":";
    std::unique_ptr<xsn_test::redis_server> own;
    if (argc == 2 && std::string(argv[1]) == "--own-server") {
      own = std::make_unique<xsn_test::redis_server>();
      redis.port = own->port();
    } else if (argc == 3) {
      redis.host = argv[1];
      redis.port = static_cast<std::uint16_t>(std::stoul(argv[2]));
    } else if (argc != 1) {
      std::cerr << "usage: redis_orchestrator [--own-server | HOST PORT]\n";
      return 2;
    }
    return run(argv[0], redis);
  } catch (const std::exception& e) {
    std::cerr << "redis_orchestrator: " << e.what() << "\n";
    return 1;
  }
}
