#include "test_script.hpp"
#include "virtual_time.hpp"

#include <xsn/parse/scxml.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <fstream>
#include <ostream>
#include <set>
#include <sstream>

namespace xsn::inline v0::cli {
namespace {

struct script_step {
  event ev;
  std::int64_t after_ms = 0;
  std::set<std::string> expected;
};

struct script {
  std::set<std::string> initial;
  std::vector<script_step> steps;
};

std::set<std::string> string_set(const boost::json::value& v, const char* what) {
  std::set<std::string> out;
  if (!v.is_array()) throw std::runtime_error(std::string(what) + " must be an array of state ids");
  for (const auto& s : v.as_array()) {
    if (!s.is_string()) throw std::runtime_error(std::string(what) + " must contain strings");
    out.emplace(s.as_string());
  }
  return out;
}

/// `event.name` (and `event.data`) of a script entry.
event script_event(const boost::json::object& entry) {
  const auto* ev = entry.if_contains("event");
  if (!ev || !ev->is_object() || !ev->as_object().contains("name") || !ev->as_object().at("name").is_string())
    throw std::runtime_error("each entry needs event.name");
  const auto& eo = ev->as_object();
  event out;
  out.name = std::string(eo.at("name").as_string());
  if (eo.contains("data")) out.data = eo.at("data");
  return out;
}

/// An entry's `after` in whole milliseconds; `total_ms` is what the entries before it wait.
std::int64_t script_after(const boost::json::value& a, std::int64_t total_ms) {
  if (!a.is_number()) throw std::runtime_error("after must be a number of milliseconds");
  const auto ms = a.to_number<double>();
  if (!(ms >= 0)) throw std::runtime_error("after must not be negative");
  if (ms > static_cast<double>(max_virtual_ms - total_ms))
    throw std::runtime_error("the after values add up to more than " + std::to_string(max_virtual_ms) + " ms");
  return static_cast<std::int64_t>(ms);
}

script_step script_entry(const boost::json::value& e, std::int64_t& total_ms) {
  if (!e.is_object()) throw std::runtime_error("each event entry must be an object");
  const auto& eo = e.as_object();
  script_step step;
  step.ev = script_event(eo);
  if (eo.contains("after")) {
    step.after_ms = script_after(eo.at("after"), total_ms);
    total_ms += step.after_ms;
  }
  if (!eo.contains("nextConfiguration")) throw std::runtime_error("each entry needs nextConfiguration");
  step.expected = string_set(eo.at("nextConfiguration"), "nextConfiguration");
  return step;
}

script parse_script(std::string_view text) {
  boost::system::error_code ec;
  auto doc = boost::json::parse(text, ec);
  if (ec) throw std::runtime_error("invalid JSON: " + ec.message());
  if (!doc.is_object()) throw std::runtime_error("the script must be a JSON object");
  const auto& o = doc.as_object();
  script s;
  std::int64_t total_ms = 0;
  if (!o.contains("initialConfiguration")) throw std::runtime_error("missing initialConfiguration");
  s.initial = string_set(o.at("initialConfiguration"), "initialConfiguration");
  if (!o.contains("events")) return s;
  if (!o.at("events").is_array()) throw std::runtime_error("events must be an array");
  for (const auto& e : o.at("events").as_array()) s.steps.push_back(script_entry(e, total_ms));
  return s;
}

std::string join(const std::set<std::string>& s) {
  std::string out = "[";
  for (const auto& x : s) out += (out.size() > 1 ? " " : "") + x;
  return out + "]";
}

int run_script(std::shared_ptr<const statechart> chart, std::string_view machine_name, const script& sc,
               std::ostream& out, std::ostream& err, bool verbose);

/// Runs every handler that is ready, until none is.
void settle(boost::asio::io_context& ioc) {
  ioc.restart();
  ioc.poll();
}

}  // namespace

int run_test_script(const std::filesystem::path& machine, const std::filesystem::path& script_path,
                    std::ostream& out, std::ostream& err, bool verbose) {
  std::ifstream in(script_path, std::ios::binary);
  if (!in) {
    err << script_path.string() << ":0:0: cannot read file\n";
    return script_load_error;
  }
  std::stringstream text;
  text << in.rdbuf();
  script sc;
  try {
    sc = parse_script(text.str());  // a bad script is reported before the machine is loaded
  } catch (const std::exception& e) {
    err << script_path.string() << ":0:0: " << e.what() << "\n";
    return script_load_error;
  }
  auto loaded = load_document(machine);
  if (!loaded) {
    for (const auto& d : loaded.errors) err << d.to_string() << "\n";
    return script_load_error;
  }
  return run_script(loaded.chart, machine.string(), sc, out, err, verbose);
}

int run_test_script_text(std::shared_ptr<const statechart> chart, std::string_view machine_name,
                         std::string_view script_text, std::string_view script_name, std::ostream& out,
                         std::ostream& err, bool verbose) {
  script sc;
  try {
    sc = parse_script(script_text);
  } catch (const std::exception& e) {
    err << script_name << ":0:0: " << e.what() << "\n";
    return script_load_error;
  }
  return run_script(std::move(chart), machine_name, sc, out, err, verbose);
}

namespace {

int run_script(std::shared_ptr<const statechart> chart, std::string_view machine_name, const script& sc,
               std::ostream& out, std::ostream& err, bool verbose) {
  const std::string machine(machine_name);
  boost::asio::io_context ioc;
  manual_clock clk;
  session_options opts;
  if (verbose) opts.on_log = [&](std::string_view label, std::string_view msg) { err << "log: " << label << ": " << msg << "\n"; };
  session s(std::move(chart), ioc.get_executor(), clk, std::move(opts));
  auto check = [&](const std::set<std::string>& expected, const std::string& when) {
    auto active = s.active_atomic_states();
    std::set<std::string> actual(active.begin(), active.end());
    if (actual == expected) return true;
    err << machine << ": mismatch " << when << "\n  expected: " << join(expected)
        << "\n  actual:   " << join(actual) << "\n";
    return false;
  };
  // The initial configuration is that of the first macrostep: queued external events (even
  // undelayed sends to self) are processed only once the script lets time run.
  s.start();
  if (!check(sc.initial, "in the initial configuration")) return script_mismatch;
  for (std::size_t i = 0; i < sc.steps.size(); ++i) {
    const auto& step = sc.steps[i];
    auto target = clk.now() + std::chrono::milliseconds(step.after_ms);
    settle(ioc);
    while (clk.fire_next(target)) settle(ioc);
    clk.advance_to(target);
    s.send(step.ev);
    settle(ioc);
    if (!check(step.expected, "after event " + std::to_string(i + 1) + " '" + step.ev.name + "'"))
      return script_mismatch;
  }
  if (verbose) out << machine << ": passed\n";
  return script_passed;
}

}  // namespace
}  // namespace xsn::inline v0::cli
