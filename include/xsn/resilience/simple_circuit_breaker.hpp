#pragma once
/// \file The default circuit breaker: opens after consecutive failures.
#include <xsn/resilience/circuit_breaker.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace xsn::inline v0 {

/// How a `simple_circuit_breaker` decides. Every field has a usable default.
struct simple_breaker_options {
  /// Consecutive failures (no success in between) that open the breaker; at least 1.
  std::uint32_t failure_threshold = 5;
  /// How long the breaker stays open before it admits trial calls; zero or more (zero: the next
  /// `try_acquire` after opening moves to half-open).
  clock::duration open_duration = std::chrono::seconds(30);
  /// Trial calls admitted in half-open; at least 1. All of them must succeed to close; the first
  /// failure re-opens. Calls beyond them are rejected until the breaker has decided.
  std::uint32_t half_open_trial_calls = 1;
  /// Its name in log records (`circuit_breaker::name`); empty: `breaker-N`.
  std::string name{};
};

/**
 * A circuit breaker that opens after `failure_threshold` consecutive failures, stays open for
 * `open_duration` (read from the `xsn::clock`), then admits `half_open_trial_calls` trial calls:
 * when all of them succeed it closes, when one fails it opens again for another `open_duration`.
 *
 * Cost: closed with no failure since the last success, `try_acquire`, `record_success`, `release`
 * and the bookkeeping of `execute`/`async_execute` are one relaxed atomic load each, and write
 * nothing: threads sharing the breaker do not contend. A failure takes the lock; the first success
 * after a failure takes it once to reset the count. While open, a rejection reads the clock and
 * one atomic, without the lock.
 *
 * A trial call that never reports (a `try_acquire` without `record_*`/`release`) keeps its
 * half-open slot: with all slots held that way the breaker rejects until one is reported.
 * `execute` and `async_execute` always report (an abandoned asynchronous call releases its slot).
 */
class simple_circuit_breaker final : public circuit_breaker {
 public:
  /**
   * A closed breaker reading time from `clk` (which must outlive it).
   * Throws `std::invalid_argument` when `failure_threshold` or `half_open_trial_calls` is zero or
   * `open_duration` is negative.
   */
  explicit simple_circuit_breaker(xsn::clock& clk, simple_breaker_options opts = {});
  ~simple_circuit_breaker() override;

  /// The options it was created with.
  const simple_breaker_options& options() const noexcept { return opts_; }

 protected:
  bool do_try_acquire(ticket& t) override;
  void do_record_success(ticket t, clock::duration elapsed) override;
  void do_record_failure(ticket t, clock::duration elapsed) override;
  void do_release(ticket t) override;
  breaker_health do_health() const override;

 private:
  void open(lock_type& lk, clock::time_point now);

  const simple_breaker_options opts_;
  std::atomic<clock::time_point::rep> open_until_{0};  // while open; read without the lock
  std::uint32_t failures_ = 0;                         // guarded by lock(): consecutive failures
  std::uint32_t trials_admitted_ = 0;                  // guarded by lock(): in this half-open
  std::uint32_t trials_succeeded_ = 0;                 // guarded by lock(): in this half-open
};

}  // namespace xsn::inline v0
