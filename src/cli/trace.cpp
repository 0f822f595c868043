// `xsn trace`: one JSON line `{"value": <XState state value>, "status": ...}` (plus `tags`, sorted,
// and the machine's `output` when there are any) after start and after every step. Time is
// simulated from 0; `{"advance": MS}` moves it by MS and then processes the delayed events that
// fell due, in due order (what XState's SimulatedClock.increment does): virtual_time.hpp, the
// rule `xsn run` follows too.
#include "trace.hpp"
#include "exit_codes.hpp"
#include "virtual_time.hpp"

#include <xsn/parse/scxml.hpp>
#include <xsn/parse/xstate.hpp>
#include <xsn/runtime/actors.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

namespace xsn::inline v0::cli {
namespace {

/// The implementations the differential corpus may name; `actors` is the root config's
/// `fixtureActors` ({name: machine config}), child machines every machine of the tree may invoke.
implementations test_fixtures(const value* actors = nullptr, int depth = 0) {
  implementations impl;
  if (const auto* named = actors ? actors->if_object() : nullptr; named && depth < 4) {
    for (const auto& [name, config] : *named) {
      auto child = parse_xstate(boost::json::serialize(config), "fixtureActors/" + std::string(name));
      if (!child) throw std::invalid_argument(child.errors.front().to_string());
      impl.actor(std::string(name), actor_logic::machine(child.chart, test_fixtures(actors, depth + 1)));
    }
  }
  impl.guard("yes", [](const value&, const event&, const value&) { return true; });
  impl.guard("no", [](const value&, const event&, const value&) { return false; });
  impl.action("noop", [](value&, const event&, const value&) {});
  impl.action("raise", action_fn([](value&, const event&, const value& params, action_scope& self) {
    const auto* o = params.if_object();
    const auto* type = o ? o->if_contains("type") : nullptr;
    if (!type || !type->is_string()) throw std::invalid_argument("raise needs params {\"type\": EVENT}");
    event ev(std::string(type->as_string()), boost::json::object{{"type", *type}});
    ev.type = event_type::internal;
    self.raise(std::move(ev));
  }));
  return impl;
}

struct step {
  bool advance = false;
  std::int64_t ms = 0;
  event ev;
};

/// Reads `{"advance": MS}` into `st`; `total_ms` is the time the steps before it advance.
bool read_advance(const value& adv, const std::string& where, std::int64_t& total_ms, step& st, std::string& error) {
  if (!adv.is_int64() && !adv.is_uint64()) {
    error = where + "'advance' must be a whole number of milliseconds";
    return false;
  }
  st.advance = true;
  st.ms = adv.is_int64() ? adv.as_int64() : static_cast<std::int64_t>(adv.as_uint64());
  if (st.ms < 0) {
    error = where + "'advance' cannot be negative";
    return false;
  }
  if (st.ms > max_virtual_ms - total_ms) {
    error = where + "the 'advance' steps add up to more than " + std::to_string(max_virtual_ms) + " ms";
    return false;
  }
  total_ms += st.ms;
  return true;
}

/// Reads event object `o` (its `type` is the name) into `st`.
bool read_event(const boost::json::object& o, const std::string& where, step& st, std::string& error) {
  const auto* type = o.if_contains("type");
  if (!type || !type->is_string() || type->as_string().empty()) {
    error = where + "an event needs a non-empty string 'type'";
    return false;
  }
  st.ev = event(std::string(type->as_string()), o);
  return true;
}

/// Reads the steps in `text`; `path` labels the errors.
bool read_steps(std::string_view text, const std::string& path, std::vector<step>& out, std::string& error) {
  boost::system::error_code ec;
  auto doc = boost::json::parse(text, ec);
  if (ec || !doc.is_array()) {
    error = path + ": " + (ec ? "invalid JSON: " + ec.message() : std::string("the steps must be a JSON array"));
    return false;
  }
  const auto& a = doc.as_array();
  std::int64_t total_ms = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto* o = a[i].if_object();
    const auto where = path + ": /" + std::to_string(i) + ": ";
    if (!o) {
      error = where + "a step must be an event object or {\"advance\": MS}";
      return false;
    }
    step st;
    const auto* adv = o->if_contains("advance");
    if (adv ? !read_advance(*adv, where, total_ms, st, error) : !read_event(*o, where, st, error)) return false;
    out.push_back(std::move(st));
  }
  return true;
}

/// `trace`'s options and its two file names; false, reported, on a usage error.
bool parse_trace_args(const std::vector<std::string>& args, std::vector<std::string>& pos, bool& fixtures,
                      std::uint64_t& max_steps, std::ostream& err) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--test-fixtures") fixtures = true;
    else if (a == "--max-steps") {
      if (i + 1 == args.size() || !parse_max_steps(args[++i], max_steps)) {
        err << "xsn: --max-steps needs a whole number of macrosteps (0: no limit)\n";
        return false;
      }
    } else if (!a.empty() && a[0] == '-') {
      err << "xsn: unknown option '" << a << "'\n";
      return false;
    } else pos.push_back(a);
  }
  if (pos.size() == 2) return true;
  err << "usage: xsn trace MACHINE STEPS.json [--test-fixtures] [--max-steps N]\n";
  return false;
}

/// The whole content of file `path` (empty when it cannot be read).
std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// For an XState chart: the datamodel with the `--test-fixtures` implementations when
/// `fixture_config` is given (else none); 0, or the exit code after a reported error.
int bind_xstate(const statechart& chart, const std::string& machine_name, const value* fixture_config,
                session_options& opts, std::ostream& err) {
  const bool fixtures = fixture_config != nullptr;
  const auto* named = fixtures && fixture_config->is_object() ? fixture_config->as_object().if_contains("fixtureActors")
                                                              : nullptr;
  implementations impl;
  try {
    if (fixtures) impl = test_fixtures(named);
  } catch (const std::exception& e) {
    err << e.what() << "\n";
    return exit_load;
  }
  auto bound = bind(chart, impl);
  if (!bound) {
    err << machine_name << ":1:1: " << bound.error().message << "\n";
    return exit_load;
  }
  opts.make_datamodel = xstate_datamodel(*bound);
  return 0;
}

/// Prints one trace line per call: the state value and status (plus `tags` and `output`).
class trace_printer {
 public:
  trace_printer(const statechart& chart, session& s, std::ostream& out) : chart_(chart), s_(s), out_(out) {}

  void operator()() {
    auto snap = s_.snapshot();
    std::string status(snap.as_object().at("status").as_string());
    if (status == "stopped") status = "error";
    // XState reports a failed machine with the value it had before the failing step.
    value v = status == "error" ? last_value_ : state_value_of(chart_, [&](state_index x) { return s_.is_active(x); });
    last_value_ = v;
    boost::json::object rec{{"value", std::move(v)}, {"status", status}};
    // XState's `snapshot.tags` (sorted: a set) and `snapshot.output`, when there are any.
    auto tags = s_.tags();
    std::sort(tags.begin(), tags.end());
    if (!tags.empty() && status != "error") rec["tags"] = boost::json::array(tags.begin(), tags.end());
    if (auto o = s_.output(); !o.is_null()) rec["output"] = std::move(o);
    out_ << boost::json::serialize(rec) << "\n";
  }

 private:
  const statechart& chart_;
  session& s_;
  std::ostream& out_;
  value last_value_;
};

/// Runs the steps, printing after start and after each; false when the step budget ran out.
bool replay(session& s, virtual_runner& run, std::vector<step>& steps, trace_printer& print) {
  s.start();
  bool within = run.settle();
  if (within) print();
  for (std::size_t i = 0; within && i < steps.size(); ++i) {
    auto& st = steps[i];
    if (st.advance) {
      within = run.advance(st.ms);
    } else {
      if (s.running()) (void)s.send(std::move(st.ev));
      within = run.settle();
    }
    if (within) print();
  }
  return within;
}

}  // namespace

int run_trace(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::vector<std::string> pos;
  bool fixtures = false;
  std::uint64_t max_steps = default_max_steps;
  if (!parse_trace_args(args, pos, fixtures, max_steps, err)) return exit_usage;
  auto loaded = load_document(pos[0]);
  if (!loaded) {
    for (const auto& d : loaded.errors) err << d.to_string() << "\n";
    return exit_load;
  }
  std::ifstream in(pos[1], std::ios::binary);
  if (!in) {
    err << "xsn: " << pos[1] << ": cannot read file\n";
    return exit_usage;
  }
  std::stringstream steps_text;
  steps_text << in.rdbuf();
  value config;  // the machine's own JSON, for its `fixtureActors`
  if (fixtures && loaded.chart->semantics == chart_semantics::xstate) {
    boost::system::error_code ec;
    config = boost::json::parse(file_text(pos[0]), ec);
  }
  return run_trace_text(loaded.chart, pos[0], fixtures ? &config : nullptr, steps_text.str(), pos[1], max_steps, out, err);
}

int run_trace_text(std::shared_ptr<const statechart> chart_ptr, const std::string& machine_name,
                   const value* fixture_config, std::string_view steps_text, const std::string& steps_name,
                   std::uint64_t max_steps, std::ostream& out, std::ostream& err) {
  std::vector<step> steps;
  std::string error;
  if (!read_steps(steps_text, steps_name, steps, error)) {
    err << "xsn: " << error << "\n";
    return exit_usage;
  }
  session_options opts;
  if (chart_ptr->semantics == chart_semantics::xstate)
    if (int code = bind_xstate(*chart_ptr, machine_name, fixture_config, opts, err)) return code;
  opts.on_log = [&err](std::string_view label, std::string_view message) {
    if (label == "error") err << "xsn: " << message << "\n";
  };
  virtual_runner run(max_steps);
  opts.on_macrostep = [&run](session&) { run.count_macrostep(); };
  session s(chart_ptr, run.context().get_executor(), run.clock(), std::move(opts));
  trace_printer print(*chart_ptr, s, out);
  const bool within = replay(s, run, steps, print);
  out.flush();
  if (!within) {
    run.report_exhausted(err);
    return 1;
  }
  return 0;
}

}  // namespace xsn::inline v0::cli
