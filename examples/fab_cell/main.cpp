// A fab cell run by the orchestrator: a load port, a transfer robot and a process chamber that
// exchange events through the bus and keep their snapshots in a state store. Half-way through,
// at a random step, the process "crashes" (the orchestrator and bus vanish without shutdown);
// a new orchestrator restores every machine from the store and the cell carries on.
//
// Time is simulated with a manual clock, so the run is fast and repeatable: `fab_cell SEED`.
#include <xsn/bus/channel_event_bus.hpp>
#include <xsn/orchestrator/orchestrator.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/store/memory_state_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <filesystem>
#include <future>
#include <iostream>
#include <optional>
#include <random>
#include <string>

namespace {

std::filesystem::path find_document(const char* argv0, const std::string& name) {
  auto beside = std::filesystem::path(argv0).parent_path() / "fab_cell.d" / name;  // (copied by the build)
  if (std::filesystem::exists(beside)) return beside;
  return std::filesystem::path(XSN_EXAMPLE_SOURCE_DIR) / name;
}

/// The process: a bus and an orchestrator on the shared executor; the store lives outside it.
struct cell_process {
  xsn::channel_event_bus bus;
  xsn::orchestrator orch;
  cell_process(boost::asio::io_context& ioc, xsn::clock& clk, xsn::state_store& store)
      : bus(ioc.get_executor(), clk), orch(ioc.get_executor(), clk, bus, store) {}
  ~cell_process() { bus.shutdown(); }
};

}  // namespace

int main(int argc, char** argv) {
  const unsigned seed = argc > 1 ? static_cast<unsigned>(std::stoul(argv[1])) : std::random_device{}();
  const int wafers = 4;
  std::mt19937 rng(seed);
  const int crash_at = std::uniform_int_distribution<int>(1, wafers * 8 - 1)(rng);
  std::cout << "seed " << seed << ": the process crashes at step " << crash_at << "\n";

  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::memory_state_store store(ioc.get_executor(), clk);  // stands for Redis (xsn::advanced)
  std::optional<cell_process> proc;
  auto settle = [&] {
    ioc.restart();
    ioc.poll();
  };
  auto boot = [&] {
    proc.emplace(ioc, clk, store);
    for (const char* doc : {"load_port", "robot", "chamber"}) {
      auto loaded = xsn::load_scxml(find_document(argv[0], std::string(doc) + ".scxml"));
      if (!loaded) {
        for (auto& d : loaded.errors) std::cerr << d.to_string() << "\n";
        std::exit(2);
      }
      proc->orch.add_document(doc, loaded.chart);
    }
  };
  auto show = [&](const char* when) {
    std::cout << when << ":";
    for (auto& id : proc->orch.list()) {
      auto st = proc->orch.query(id);
      std::cout << "  " << id << "=" << (st->states.empty() ? "-" : st->states.front());
    }
    std::cout << "\n";
  };

  boot();
  for (const char* id : {"load_port", "robot", "chamber"}) {
    std::promise<std::error_code> p;
    proc->orch.async_create(id, id, [&p](std::error_code ec) { p.set_value(ec); });
    settle();
    if (auto ec = p.get_future().get()) {
      std::cerr << "create " << id << ": " << ec.message() << "\n";
      return 1;
    }
  }
  show("created");

  // The scenario: for each wafer a carrier is placed, then time passes in 500 ms steps.
  int step = 0;
  for (int w = 0; w < wafers; ++w) {
    std::promise<std::error_code> placed;
    proc->orch.async_send("load_port", xsn::event("carrier.placed"), [&placed](std::error_code ec, const xsn::send_result&) { placed.set_value(ec); });
    settle();
    if (auto ec = placed.get_future().get()) {
      std::cerr << "carrier.placed: " << ec.message() << "\n";
      return 1;
    }
    for (int k = 0; k < 8; ++k) {
      auto until = clk.now() + std::chrono::milliseconds(500);
      while (clk.fire_next(until)) settle();
      clk.advance_to(until);
      settle();
      if (++step == crash_at) {
        show("before the crash");
        proc.reset();  // no shutdown, nothing persisted now: only what was already stored survives
        settle();
        boot();
        std::promise<std::pair<std::error_code, std::size_t>> restored;
        proc->orch.async_restore([&restored](std::error_code ec, std::size_t n) { restored.set_value({ec, n}); });
        settle();
        auto [ec, n] = restored.get_future().get();
        std::cout << "restarted: " << n << " machines restored" << (ec ? " (" + ec.message() + ")" : "") << "\n";
        show("after the restart");
      }
    }
    show(("wafer " + std::to_string(w + 1)).c_str());
  }

  std::promise<std::error_code> down;
  proc->orch.async_shutdown(std::chrono::seconds(1), [&down](std::error_code ec) { down.set_value(ec); });
  settle();
  auto ec = down.get_future().get();
  // Every wafer came back: read the load port's counter from the store.
  std::promise<std::optional<xsn::stored_value>> got;
  store.async_get("xsn/machines/load_port", [&got](std::error_code, std::optional<xsn::stored_value> v) { got.set_value(v); });
  settle();
  auto stored = got.get_future().get();
  auto processed = stored ? boost::json::parse(stored->value).at("snapshot").at("context").at("processed").to_number<int>() : -1;
  std::cout << "wafers processed: " << processed << " of " << wafers << (ec ? ", shutdown: " + ec.message() : "") << "\n";
  return processed == wafers && !ec ? 0 : 1;
}
