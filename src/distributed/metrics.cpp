#include "metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace xsn::inline v0::distributed {

namespace {

// A character that may start a name: an ASCII letter, '_', and ':' in metric names.
bool name_start(char c, bool colons) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colons && c == ':');
}

bool valid_name(const std::string& s, bool colons) {
  if (s.empty() || !name_start(s[0], colons)) return false;
  for (std::size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (!name_start(c, colons) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Label names: valid, not reserved (`__` prefix, `le` of a histogram), each once.
void check_labels(const std::string& name, const metric_labels& labels, bool is_histogram) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const auto& key = labels[i].first;
    if (!valid_name(key, false) || key.rfind("__", 0) == 0 || (is_histogram && key == "le"))
      throw std::invalid_argument("metrics: invalid label name '" + key + "' for " + name);
    for (std::size_t j = 0; j < i; ++j)
      if (labels[j].first == key) throw std::invalid_argument("metrics: label '" + key + "' twice for " + name);
  }
}

// A sample value: shortest round-trip decimal, `+Inf`, `-Inf`, `NaN`.
void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

void append_escaped(std::string& out, const std::string& s, bool quotes) {
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (quotes && c == '"') out += "\\\"";
    else out += c;
  }
}

// `{a="x",le="0.5"}`, or nothing without labels.
void append_labels(std::string& out, const metric_labels& labels, const char* le = nullptr) {
  if (labels.empty() && !le) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    append_escaped(out, v, true);
    out += '"';
  }
  if (le) {
    if (!first) out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

// The `_bucket` lines (cumulative, the last `+Inf`), `_sum` and `_count` of one histogram series.
void append_histogram(std::string& out, const std::string& name, const metric_labels& labels, const histogram& h) {
  const auto counts = h.cumulative();
  const auto& bounds = h.bounds();
  for (std::size_t i = 0; i < counts.size(); ++i) {
    std::string le;
    append_number(le, i < bounds.size() ? bounds[i] : INFINITY);
    out += name + "_bucket";
    append_labels(out, labels, le.c_str());
    out += ' ' + std::to_string(counts[i]) + '\n';
  }
  out += name + "_sum";
  append_labels(out, labels);
  out += ' ';
  append_number(out, h.sum());
  out += '\n' + name + "_count";
  append_labels(out, labels);
  out += ' ' + std::to_string(counts.back()) + '\n';
}

}  // namespace

histogram::histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void histogram::observe(double v) noexcept {
  // The first bound >= v: Prometheus buckets are `le` (less or equal).
  const auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<std::uint64_t> histogram::cumulative() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) out[i] = total += counts_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<double> default_latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

metrics_registry::series& metrics_registry::add(const std::string& name, const std::string& help, kind type,
                                                metric_labels labels) {
  if (!valid_name(name, true)) throw std::invalid_argument("metrics: invalid metric name '" + name + "'");
  check_labels(name, labels, type == kind::histogram);
  std::lock_guard lock(mutex_);
  auto fam = std::find_if(families_.begin(), families_.end(), [&](const family& f) { return f.name == name; });
  if (fam == families_.end()) {
    fam = families_.insert(families_.end(), family{name, help, type, {}});
  } else if (fam->type != type || fam->help != help) {
    throw std::invalid_argument("metrics: " + name + " registered before with another type or help");
  }
  for (const auto& s : fam->members)
    if (s.labels == labels) throw std::invalid_argument("metrics: series of " + name + " registered twice");
  return fam->members.emplace_back(series{std::move(labels), nullptr, nullptr, nullptr});
}

counter& metrics_registry::add_counter(const std::string& name, const std::string& help, metric_labels labels) {
  auto& s = add(name, help, kind::counter, std::move(labels));
  s.c = std::make_unique<counter>();
  return *s.c;
}

gauge& metrics_registry::add_gauge(const std::string& name, const std::string& help, metric_labels labels) {
  auto& s = add(name, help, kind::gauge, std::move(labels));
  s.g = std::make_unique<gauge>();
  return *s.g;
}

histogram& metrics_registry::add_histogram(const std::string& name, const std::string& help,
                                           std::vector<double> bounds, metric_labels labels) {
  for (std::size_t i = 0; i < bounds.size(); ++i)
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
      throw std::invalid_argument("metrics: bounds of " + name + " must be finite and ascending");
  auto h = std::make_unique<histogram>(std::move(bounds));
  auto& s = add(name, help, kind::histogram, std::move(labels));
  s.h = std::move(h);
  return *s.h;
}

std::string metrics_registry::render() const {
  std::string out;
  std::lock_guard lock(mutex_);
  for (const auto& f : families_) {
    out += "# HELP " + f.name + ' ';
    append_escaped(out, f.help, false);
    out += "\n# TYPE " + f.name + (f.type == kind::counter ? " counter\n" : f.type == kind::gauge ? " gauge\n" : " histogram\n");
    for (const auto& s : f.members) {
      if (s.c || s.g) {
        out += f.name;
        append_labels(out, s.labels);
        out += ' ';
        if (s.c) out += std::to_string(s.c->value());
        else append_number(out, s.g->value());
        out += '\n';
        continue;
      }
      append_histogram(out, f.name, s.labels, *s.h);
    }
  }
  return out;
}

}  // namespace xsn::inline v0::distributed
