#pragma once
/// \file A tiny thread-safe metrics registry rendered in the Prometheus text exposition format.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace xsn::inline v0::distributed {

/// Label pairs of one series, in the order they are rendered: {{"kind", "read"}, ...}.
using metric_labels = std::vector<std::pair<std::string, std::string>>;

/// A monotonically increasing count.
class counter {
 public:
  /// Adds `n`.
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  /// The current count.
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down.
class gauge {
 public:
  /// Sets the value.
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  /// Adds `d` (negative to subtract).
  void add(double d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
  /// The current value.
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// Observations counted into fixed buckets (upper bounds, ascending), with their sum and count.
class histogram {
 public:
  /// `bounds` ascending and finite; `+Inf` is implicit.
  explicit histogram(std::vector<double> bounds);
  /// Records one observation.
  void observe(double v) noexcept;
  /// Records a duration in seconds.
  template <typename Rep, typename Period>
  void observe(std::chrono::duration<Rep, Period> d) noexcept {
    observe(std::chrono::duration<double>(d).count());
  }
  /// The upper bounds, without `+Inf`.
  const std::vector<double>& bounds() const noexcept { return bounds_; }
  /// Cumulative counts per bound, then the `+Inf` bucket (= the count), read at one moment.
  std::vector<std::uint64_t> cumulative() const;
  /// The sum of the observations.
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket, the last one is +Inf
  std::atomic<double> sum_{0};
};

/// Latency buckets in seconds, 1 ms to 10 s.
std::vector<double> default_latency_buckets();

/**
 * The metrics of a process. Registration returns a reference that stays valid as long as the
 * registry; updating a metric is lock-free, `render` takes a lock only against registration.
 * Several series may share a name when their labels differ (and their type and help agree).
 */
class metrics_registry {
 public:
  /// Registers a counter. Throws `std::invalid_argument` on a bad name or label, a series
  /// registered twice, or a name registered with another type or help.
  counter& add_counter(const std::string& name, const std::string& help, metric_labels labels = {});
  /// Registers a gauge (throws like `add_counter`).
  gauge& add_gauge(const std::string& name, const std::string& help, metric_labels labels = {});
  /// Registers a histogram (throws like `add_counter`, and on bounds not ascending and finite).
  histogram& add_histogram(const std::string& name, const std::string& help,
                           std::vector<double> bounds = default_latency_buckets(), metric_labels labels = {});
  /// Every metric, grouped by name in registration order: text exposition format 0.0.4.
  std::string render() const;

 private:
  enum class kind { counter, gauge, histogram };
  struct series {
    metric_labels labels;
    std::unique_ptr<counter> c;
    std::unique_ptr<gauge> g;
    std::unique_ptr<histogram> h;
  };
  struct family {
    std::string name, help;
    kind type;
    std::deque<series> members;
  };
  series& add(const std::string& name, const std::string& help, kind type, metric_labels labels);

  mutable std::mutex mutex_;
  std::deque<family> families_;
};

}  // namespace xsn::inline v0::distributed
