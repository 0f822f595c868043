#include <xsn/core/logging.hpp>

#include "core/logging_detail.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <array>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace xsn::inline v0 {
namespace {

constexpr std::array<std::string_view, 6> component_names = {"xsn.bus", "xsn.store", "xsn.breaker",
                                                              "xsn.orchestrator", "xsn.node", "xsn.session"};

spdlog::level::level_enum to_spdlog(logging::level l) noexcept {
  switch (l) {
    case logging::level::trace: return spdlog::level::trace;
    case logging::level::debug: return spdlog::level::debug;
    case logging::level::info: return spdlog::level::info;
    case logging::level::warn: return spdlog::level::warn;
    case logging::level::error: return spdlog::level::err;
    case logging::level::critical: return spdlog::level::critical;
    case logging::level::off: break;
  }
  return spdlog::level::off;
}

logging::level from_spdlog(spdlog::level::level_enum l) noexcept {
  switch (l) {
    case spdlog::level::trace: return logging::level::trace;
    case spdlog::level::debug: return logging::level::debug;
    case spdlog::level::info: return logging::level::info;
    case spdlog::level::warn: return logging::level::warn;
    case spdlog::level::err: return logging::level::error;
    case spdlog::level::critical: return logging::level::critical;
    default: break;
  }
  return logging::level::off;
}

/// Hands spdlog's records to a `logging::sink`, without spdlog's pattern: the text is the payload.
class callback_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit callback_sink(logging::sink out) : out_(std::move(out)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    out_(logging::record{std::string_view(msg.logger_name.data(), msg.logger_name.size()),
                         from_spdlog(msg.level),
                         std::string_view(msg.payload.data(), msg.payload.size())});
  }
  void flush_() override {}

 private:
  logging::sink out_;
};

void register_one(std::string_view name, logging::level lvl, const std::shared_ptr<spdlog::sinks::sink>& sink) {
  auto logger = std::make_shared<spdlog::logger>(std::string(name), sink);
  logger->set_level(to_spdlog(lvl));
  spdlog::drop(std::string(name));
  spdlog::register_logger(std::move(logger));
}

}  // namespace

namespace logging {

std::string_view to_string(level l) noexcept {
  switch (l) {
    case level::trace: return "trace";
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
    case level::critical: return "critical";
    case level::off: break;
  }
  return "off";
}

bool is_component(std::string_view name) noexcept {
  for (auto n : component_names)
    if (n == name) return true;
  return false;
}

void configure(level lvl, sink out) {
  if (!out) throw std::invalid_argument("xsn::logging::configure: the sink is empty");
  auto s = std::make_shared<callback_sink>(std::move(out));
  for (auto name : component_names) register_one(name, lvl, s);
}

void configure(std::string_view name, level lvl, sink out) {
  if (!is_component(name))
    throw std::invalid_argument("xsn::logging::configure: '" + std::string(name) + "' is not an xsn logger");
  if (!out) throw std::invalid_argument("xsn::logging::configure: the sink is empty");
  register_one(name, lvl, std::make_shared<callback_sink>(std::move(out)));
}

void set_level(level lvl) {
  for (auto name : component_names) (void)set_level(name, lvl);
}

bool set_level(std::string_view name, level lvl) {
  if (!is_component(name)) return false;
  auto logger = spdlog::get(std::string(name));
  if (!logger) return false;
  logger->set_level(to_spdlog(lvl));
  return true;
}

void reset() {
  for (auto name : component_names) {
    if (auto logger = spdlog::get(std::string(name))) logger->set_level(spdlog::level::off);
    spdlog::drop(std::string(name));
  }
}

}  // namespace logging

namespace detail {

std::shared_ptr<spdlog::logger> component_logger(std::string_view name) {
  if (auto l = spdlog::get(std::string(name))) return l;
  static const auto null_sink = std::make_shared<spdlog::sinks::null_sink_mt>();
  auto silent = std::make_shared<spdlog::logger>(std::string(name), null_sink);
  silent->set_level(spdlog::level::off);
  return silent;
}

namespace {

// True when `value` can be written bare: not empty, no control, space, quote or '=' characters.
bool is_plain_field(std::string_view value) {
  if (value.empty()) return false;
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '=') return false;
  }
  return true;
}

// The two-character escape of `c` ("\\n" for a newline), or nullptr when it has none.
const char* short_escape(char c) {
  switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return nullptr;
  }
}

// Appends `c` to `out`, escaped the way field() quotes a value.
void append_escaped(std::string& out, char c) {
  if (const char* esc = short_escape(c)) {
    out += esc;
    return;
  }
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u != 0x7f) {
    out.push_back(c);
    return;
  }
  constexpr char hex[] = "0123456789abcdef";
  out += "\\u00";
  out.push_back(hex[u >> 4]);
  out.push_back(hex[u & 15]);
}

}  // namespace

std::string field(std::string_view value) {
  if (is_plain_field(value)) return std::string(value);
  std::string out;
  out.reserve(value.size() + 2);
  out.push_back('"');
  for (const char c : value) append_escaped(out, c);
  out.push_back('"');
  return out;
}

}  // namespace detail
}  // namespace xsn::inline v0
