// `xsn run`: a machine on virtual time (virtual_time.hpp), one line per macrostep.
#include "run.hpp"

#include "exit_codes.hpp"
#include "virtual_time.hpp"

#include <xsn/parse/scxml.hpp>
#include <xsn/runtime/diagnostics.hpp>
#include <xsn/runtime/inspection.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <memory>
#include <utility>

namespace xsn::inline v0::cli {
namespace {

/// One step given on the command line: an event to send or time to advance.
struct run_step {
  bool is_event = false;
  event ev;
  std::int64_t ms = 0;
};

struct run_args {
  std::string file;
  bool interactive = false;
  bool log = false;
  bool verbose = false;
  std::uint64_t max_steps = default_max_steps;
  std::vector<run_step> steps;
};

/// Parses `NAME[=JSON]`; false with a message when the JSON part is malformed.
bool parse_event_arg(const std::string& arg, event& ev, std::string& error) {
  auto eq = arg.find('=');
  ev = event(arg.substr(0, eq));
  if (ev.name.empty()) {
    error = "empty event name";
    return false;
  }
  if (eq == std::string::npos) return true;
  boost::system::error_code ec;
  ev.data = boost::json::parse(arg.substr(eq + 1), ec);
  if (ec) {
    error = "invalid JSON data for event '" + ev.name + "': " + ec.message();
    return false;
  }
  return true;
}

/// Parses `--advance`'s value: a whole, non-negative number of milliseconds.
bool parse_ms(const std::string& text, std::int64_t& ms) {
  std::uint64_t v = 0;
  if (!parse_max_steps(text, v)) return false;
  ms = static_cast<std::int64_t>(v);
  return true;
}

/// `--interactive`, `--log` and `--verbose`; false for anything else.
bool read_run_flag(const std::string& a, run_args& out) {
  if (a == "--interactive") out.interactive = true;
  else if (a == "--log") out.log = true;
  else if (a == "--verbose") out.verbose = true;
  else return false;
  return true;
}

bool takes_value(const std::string& a) { return a == "--event" || a == "--advance" || a == "--max-steps"; }

/// `--event`, `--advance` or `--max-steps` with its value `v`; an empty message means it is fine.
std::string read_run_option(const std::string& a, const std::string& v, run_args& out) {
  run_step st;
  if (a == "--max-steps") {
    if (!parse_max_steps(v, out.max_steps)) return "--max-steps needs a whole number (0: no limit)";
    return {};
  }
  if (a == "--advance" && !parse_ms(v, st.ms)) return "--advance needs a whole number of milliseconds";
  if (a == "--event") {
    st.is_event = true;
    std::string error;
    if (!parse_event_arg(v, st.ev, error)) return error;
  }
  out.steps.push_back(std::move(st));
  return {};
}

/// The machine file: the first argument that is not an option.
bool is_file_arg(const std::string& a, const run_args& out) { return out.file.empty() && !a.empty() && a[0] != '-'; }

/// Reads the arguments after `run`; an empty message means they are fine.
std::string parse_run_args(const std::vector<std::string>& args, run_args& out) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (read_run_flag(a, out)) continue;
    if (takes_value(a) && i + 1 < args.size()) {
      if (auto error = read_run_option(a, args[++i], out); !error.empty()) return error;
    } else if (is_file_arg(a, out)) {
      out.file = a;
    } else {
      return "unknown or incomplete argument '" + a + "'";
    }
  }
  return out.file.empty() ? "run needs a machine file" : "";
}

/// A session on virtual time that prints its configuration after each macrostep.
class machine_run {
 public:
  machine_run(const run_args& a, std::shared_ptr<const statechart> chart, std::ostream& out, std::ostream& err)
      : args_(a), out_(out), err_(err), runner_(a.max_steps) {
    session_ = std::make_unique<session>(std::move(chart), runner_.context().get_executor(), runner_.clock(),
                                         options());
  }

  /// Starts the machine; false when the step budget ran out.
  bool start() {
    session_->start();
    return runner_.settle();
  }
  /// Sends `ev` and runs what it causes; false when the step budget ran out.
  bool send(event ev) {
    const std::string name = ev.name;
    if (auto ec = session_->send(std::move(ev))) {
      err_ << "xsn: event '" << name << "' refused: " << ec.message() << "\n";
      refused_ = true;
    }
    return runner_.settle();
  }
  /// Moves virtual time by `ms` (virtual_time.hpp); false when the step budget ran out.
  bool advance(std::int64_t ms) { return runner_.advance(ms); }
  bool running() const { return session_->running(); }

  /// Reports how the run ended and returns the exit code.
  int finish() {
    if (runner_.exhausted()) {
      runner_.report_exhausted(err_);
      return exit_failure;
    }
    const auto status = session_->status();
    if (args_.verbose) print_outcome(status);
    if (status == session_status::error) {
      err_ << "xsn: the machine ended in error: " << boost::json::serialize(session_->error()) << "\n";
      return exit_failure;
    }
    return refused_ ? exit_failure : 0;
  }

 private:
  session_options options() {
    session_options o;
    o.on_macrostep = [this](session& s) {
      if (runner_.count_macrostep()) print_macrostep(s);
    };
    o.on_done = [this](session&, const value& donedata) { donedata_ = donedata; };
    o.on_diagnostic = [this](session&, const runtime_diagnostic& d) { print_diagnostic(d); };
    o.on_log = [this](std::string_view label, std::string_view msg) {
      if (args_.log) err_ << "log: " << label << (label.empty() ? "" : ": ") << msg << "\n";
    };
    if (args_.verbose) {
      o.inspect = [this](const inspection_event& e) {
        if (e.kind == inspection_kind::event && e.actor == session_.get() && e.event) event_ = e.event->name;
      };
    }
    return o;
  }

  void print_macrostep(session& s) {
    std::string line;
    if (args_.verbose) {
      line = std::to_string(runner_.now_ms()) + "ms " + (first_ ? std::string("(start)") : event_) + ":";
      first_ = false;
    }
    for (const auto& id : s.active_atomic_states()) line += (line.empty() ? "" : " ") + id;
    out_ << line << std::endl;
  }

  /// Errors always (stderr); an ignored event with --verbose only.
  void print_diagnostic(const runtime_diagnostic& d) {
    if (d.kind == diagnostic_kind::event_ignored) {
      if (args_.verbose) err_ << "xsn: event '" << d.event << "' ignored: " << to_string(d.reason) << "\n";
      return;
    }
    err_ << "xsn: " << to_string(d.kind);
    if (!d.state.empty()) err_ << " in state '" << d.state << "'";
    if (!d.event.empty()) err_ << " (" << d.event << ")";
    err_ << ": " << d.message << "\n";
  }

  void print_outcome(session_status status) {
    out_ << "status: " << to_string(status) << "\n";
    if (status != session_status::done) return;
    const bool xstate = session_->chart().semantics == chart_semantics::xstate;
    const value result = xstate ? session_->output() : donedata_;
    out_ << (xstate ? "output: " : "donedata: ") << boost::json::serialize(result) << "\n";
  }

  const run_args& args_;
  std::ostream& out_;
  std::ostream& err_;
  virtual_runner runner_;
  std::unique_ptr<session> session_;
  value donedata_;
  std::string event_;
  bool first_ = true;
  bool refused_ = false;
};

/// One line of `--interactive`; false when the step budget ran out.
bool interactive_line(machine_run& m, const std::string& line, std::ostream& err) {
  if (line[0] == '+') {
    std::int64_t ms = 0;
    if (parse_ms(line.substr(1), ms)) return m.advance(ms);
    err << "xsn: '+MS' needs a whole number of milliseconds\n";
    return true;
  }
  auto sp = line.find(' ');
  std::string arg = sp == std::string::npos ? line : line.substr(0, sp) + "=" + line.substr(sp + 1);
  event ev;
  std::string error;
  if (parse_event_arg(arg, ev, error)) return m.send(std::move(ev));
  err << "xsn: " << error << "\n";
  return true;
}

/// `--interactive`: 'NAME [JSON]' sends an event, '+MS' advances time, until the input or the
/// machine ends; false when the step budget ran out.
bool run_interactive(machine_run& m, std::istream& in, std::ostream& err) {
  std::string line;
  while (m.running() && std::getline(in, line))
    if (!line.empty() && !interactive_line(m, line, err)) return false;
  return true;
}

}  // namespace

int run_machine(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err) {
  run_args a;
  if (auto error = parse_run_args(args, a); !error.empty()) {
    err << "xsn: " << error << "\n"
        << "usage: xsn run MACHINE [--event NAME[=JSON]]... [--advance MS]... [--interactive] [--log]\n"
           "               [--verbose] [--max-steps N]   (xsn help run)\n";
    return exit_usage;
  }
  auto loaded = load_document(a.file);
  if (!loaded) {
    for (const auto& d : loaded.errors) err << d.to_string() << "\n";
    return exit_load;
  }
  machine_run m(a, loaded.chart, out, err);
  bool within = m.start();
  for (std::size_t i = 0; within && i < a.steps.size(); ++i) {
    auto& st = a.steps[i];
    within = st.is_event ? m.send(std::move(st.ev)) : m.advance(st.ms);
  }
  if (within && a.interactive) run_interactive(m, in, err);
  return m.finish();
}

}  // namespace xsn::inline v0::cli
