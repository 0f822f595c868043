// traffic_light: runs traffic_light.scxml on an io_context with real (short) delays.
//
// Usage: traffic_light [FILE.scxml] [CYCLES]   (an empty FILE picks the default document)
//
// The program counts completed cycles with a native action, presses the pedestrian button once
// during the second green phase, and sends `shutdown` after CYCLES cycles (default 3). The
// chart then reaches its final state and cancels its own timers, so `io_context::run()` returns
// on its own: nothing is left scheduled.
#include <xsn/core/asio_clock.hpp>
#include <xsn/xsn.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
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

}  // namespace

int main(int argc, char** argv) {
  const fs::path path = find_document(argc, argv, "traffic_light.scxml");
  const int max_cycles = argc > 2 ? std::atoi(argv[2]) : 3;

  const xsn::parse_result parsed = xsn::load_scxml(path);
  if (!parsed) {
    for (const auto& d : parsed.errors) std::cerr << d.to_string() << '\n';
    return 1;
  }

  boost::asio::io_context ioc;
  // Declared after the io_context and before the session: destroyed in the reverse order.
  xsn::asio_clock clk(ioc.get_executor());
  const auto started = clk.now();
  auto elapsed_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clk.now() - started).count();
  };

  int cycles = 0;
  bool button_pressed = false;
  bool shutdown_sent = false;
  bool done = false;

  // A guard for a broken chart: stop the loop instead of hanging. Cancelled on success.
  const auto watchdog = clk.schedule(clk.now() + 10s, [&] {
    std::cerr << "traffic_light: no final state after 10 s, giving up\n";
    ioc.stop();
  });

  xsn::session_options opts;
  opts.actions["cycle_completed"] = [&](xsn::session&) { ++cycles; };
  opts.on_log = [&](std::string_view label, std::string_view message) {
    std::cout << "[" << std::setw(5) << elapsed_ms() << " ms]   log: " << label;
    if (!message.empty()) std::cout << " " << message;
    std::cout << '\n';
  };
  opts.on_macrostep = [&](xsn::session& s) {
    std::cout << "[" << std::setw(5) << elapsed_ms() << " ms] cycle " << cycles << ": "
              << join(s.active_atomic_states()) << '\n';
    if (!s.running()) return;
    if (cycles >= max_cycles && !shutdown_sent) {
      shutdown_sent = true;
      s.send(xsn::event{"shutdown"});
    } else if (cycles == 1 && !button_pressed && s.is_active(s.chart().find_state("green"))) {
      // A pedestrian arrives 30 ms into the second green phase.
      button_pressed = true;
      clk.schedule(clk.now() + 30ms, [sp = &s, &elapsed_ms] {
        std::cout << "[" << std::setw(5) << elapsed_ms() << " ms] -> button\n";
        sp->send(xsn::event{"button"});
      });
    }
  };
  opts.on_done = [&](xsn::session&, const xsn::value&) {
    done = true;
    clk.cancel(watchdog);
  };

  xsn::session machine(parsed.chart, ioc.get_executor(), clk, std::move(opts));
  machine.start();
  ioc.run();

  std::cout << (done ? "done" : "not done") << " after " << cycles << " cycles, "
            << clk.pending() << " timers pending\n";
  return done && clk.pending() == 0 ? 0 : 1;
}
