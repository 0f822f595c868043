// load_port: drives load_port.scxml through a scripted scenario on an io_context.
//
// Usage: load_port [FILE.scxml]
//
// The scenario is a list of steps, each "once state X is active, send event E". A step is
// checked after every macrostep (`on_macrostep`) and sent a little later through the same
// `asio_clock` the session uses, so the output reads like a timeline. The chart's own delays
// (door motion, watchdog) run on real time; the program exits when the chart reaches `off`.
#include <xsn/core/asio_clock.hpp>
#include <xsn/xsn.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#ifndef XSN_EXAMPLE_SOURCE_DIR
#define XSN_EXAMPLE_SOURCE_DIR "."
#endif

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// The document: as given, else next to the program (the build tree), else in the sources.
fs::path find_document(int argc, char** argv, const char* name) {
  if (argc > 1 && *argv[1] != '\0') return argv[1];
  const fs::path beside = fs::path(argv[0]).parent_path() / name;
  if (fs::exists(beside)) return beside;
  return fs::path(XSN_EXAMPLE_SOURCE_DIR) / name;
}

std::string join(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) {
    if (!out.empty()) out += ", ";
    out += id;
  }
  return out;
}

/// One step of the scenario: once `when_in` is active, wait `pause`, then send `event`.
struct step {
  std::string_view when_in;
  std::string_view event;
  std::chrono::milliseconds pause;
  std::string_view note;
};

// The stall is sent at once: it must reach the chart before the simulated motion completes.
constexpr std::chrono::milliseconds pause = 40ms;
const std::vector<step> scenario = {
    {"absent", "carrier.placed", pause, "operator places a carrier"},
    {"placed", "clamp", pause, "clamp it"},
    {"clamped", "open", pause, "try to open the door too early"},
    {"clamped", "dock", pause, "dock the carrier"},
    {"docked", "open", pause, "open the door"},
    {"door_opening", "motor.stall", 0ms, "the door motor stalls"},
    {"alarm", "reset", pause, "operator resets: resume"},
    {"door_open", "undock", pause, "try to undock with the door open"},
    {"door_open", "close", pause, "close the door"},
    {"door_closed", "undock", pause, "undock"},
    {"clamped", "carrier.removed", pause, "someone pulls the clamped carrier"},
    {"alarm", "reset", pause, "operator resets: start over"},
    {"absent", "shutdown", pause, "power down"},
};

}  // namespace

int main(int argc, char** argv) {
  const fs::path path = find_document(argc, argv, "load_port.scxml");
  const xsn::parse_result parsed = xsn::load_scxml(path);
  if (!parsed) {
    for (const auto& d : parsed.errors) std::cerr << d.to_string() << '\n';
    return 1;
  }

  boost::asio::io_context ioc;
  // Declared after the io_context and before the session: destroyed in the reverse order.
  xsn::asio_clock clk(ioc.get_executor());
  const auto started = clk.now();
  auto stamp = [&] {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clk.now() - started).count();
    std::cout << "[" << std::setw(5) << ms << " ms] ";
  };

  std::size_t next_step = 0;
  bool step_scheduled = false;
  bool done = false;

  const auto watchdog = clk.schedule(clk.now() + 10s, [&] {
    std::cerr << "load_port: scenario stuck at step " << next_step << ", giving up\n";
    ioc.stop();
  });

  xsn::session_options opts;
  opts.actions["map_wafers"] = [&](xsn::session&) {
    stamp();
    std::cout << "  native: mapping wafers in the open carrier\n";
  };
  opts.on_log = [&](std::string_view label, std::string_view message) {
    stamp();
    std::cout << "  log " << label << ": " << message << '\n';
  };
  opts.on_macrostep = [&](xsn::session& s) {
    stamp();
    std::cout << join(s.active_atomic_states()) << '\n';
    if (!s.running() || step_scheduled || next_step == scenario.size()) return;
    const step& st = scenario[next_step];
    if (!s.is_active(s.chart().find_state(st.when_in))) return;
    step_scheduled = true;
    clk.schedule(clk.now() + st.pause, [&, sp = &s, &sent = st] {
      stamp();
      std::cout << "-> " << sent.event << "  (" << sent.note << ")\n";
      ++next_step;
      step_scheduled = false;
      if (auto ec = sp->send(xsn::event{std::string(sent.event)}))
        std::cerr << "send failed: " << ec.message() << '\n';
    });
  };
  opts.on_done = [&](xsn::session&, const xsn::value&) {
    done = true;
    clk.cancel(watchdog);
  };

  xsn::session machine(parsed.chart, ioc.get_executor(), clk, std::move(opts));
  machine.start();
  ioc.run();

  const bool ok = done && next_step == scenario.size() && clk.pending() == 0;
  std::cout << (ok ? "scenario complete" : "scenario incomplete") << '\n';
  return ok ? 0 : 1;
}
