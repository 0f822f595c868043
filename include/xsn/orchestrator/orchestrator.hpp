#pragma once
/// \file Many machines in one process: created, addressed, routed and persisted together.
#include <xsn/bus/event_bus.hpp>
#include <xsn/model/statechart.hpp>
#include <xsn/runtime/clock.hpp>
#include <xsn/runtime/errors.hpp>
#include <xsn/runtime/event.hpp>
#include <xsn/runtime/session.hpp>
#include <xsn/store/state_store.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio {
class thread_pool;
}

namespace xsn {

class circuit_breaker;

/// How an orchestrator names, persists and runs its machines.
struct orchestrator_options {
  /// A machine `id` listens on bus address `address_prefix + id`: the orchestrator subscribes
  /// once, to the pattern `address_prefix*`, and routes by the rest of the address.
  std::string address_prefix = "machine/";
  /// A machine `id` is stored under key `key_prefix + id`.
  std::string key_prefix = "xsn/machines/";
  /// Persist each machine's snapshot after every macrostep (acknowledging events only then).
  bool persist = true;
  /// Compare-and-set attempts per write before the write is reported failed.
  int max_write_attempts = 5;
  /// Bound and overflow policy of the orchestrator's bus subscription (shared by its machines;
  /// the channel bus allocates its ring up front, about 320 bytes per slot).
  subscription_options subscription{1024, overflow_policy::wait};
  /// Template for every session (limits, queue capacities, native actions, log output).
  session_options session;
  /// Guards store writes when set (e.g. a `simple_circuit_breaker`); not owned.
  circuit_breaker* store_breaker = nullptr;
};

/// What `query` reports about one machine.
struct machine_status {
  std::string id;                     ///< Machine id.
  std::string document;               ///< Name of the document it runs.
  bool running = false;               ///< False once it reached a top-level final state.
  std::vector<std::string> states;    ///< Active atomic states.
  std::uint64_t version = 0;          ///< Store version of its last persisted snapshot.
};

/// The orchestrator's health: a structured report, cheap to take.
struct orchestrator_health {
  bool accepting = false;             ///< False once shutdown began.
  std::size_t machines = 0;           ///< Machines held.
  std::size_t running = 0;            ///< Machines not yet in a final state.
  std::size_t bus_backlog = 0;        ///< Messages waiting in the machines' bus subscription.
  std::uint64_t events = 0;           ///< Events processed.
  std::uint64_t writes = 0;           ///< Snapshots persisted.
  std::uint64_t write_conflicts = 0;  ///< Compare-and-set conflicts retried.
  std::uint64_t write_failures = 0;   ///< Writes given up (the affected sends completed with the error).
  std::uint64_t unroutable = 0;       ///< Bus messages addressed to a machine it does not hold (dropped).
  std::size_t writes_in_flight = 0;   ///< Store writes not yet completed.
  std::string last_error;             ///< The latest failure, empty when none.
  bool store_reachable = false;       ///< The state store's own health report says it is reachable.
  std::string store_breaker;          ///< State of `store_breaker` (`closed`, `open`, `half_open`), empty when none.
};

/**
 * Runs many machine sessions on one executor: creates them from named documents, addresses them
 * by id, routes events between them and from outside through an `event_bus`, and persists each
 * session's snapshot to a `state_store` after every macrostep with compare-and-set on the
 * store's version. `async_restore` brings every stored machine back after a restart.
 *
 * Threading: every member function may be called from any thread; the work runs on a strand of
 * the executor, which is also where completions are delivered unless the token says otherwise.
 * The orchestrator owns no thread unless constructed with a thread count (then it owns a pool
 * and joins it on destruction). Shut it down with `async_shutdown` before destroying it;
 * destruction without shutdown cancels everything without persisting, and with a user executor
 * the executor must still run (or be stopped) so the cancellations complete.
 *
 * Machines send to each other with `<send target="xsn:OTHER_ID" .../>` (through the bus), and to
 * any bus address with `target="bus:ADDRESS"`.
 */
class orchestrator {
 public:
  /// Completion signature of operations that only succeed or fail.
  using done_signature = void(std::error_code);
  /// Completion signature of `async_restore`: number of machines restored.
  using restore_signature = void(std::error_code, std::size_t);

  /// Runs on `ex` (through a strand). `bus`, `store` and `clk` must outlive the orchestrator.
  orchestrator(boost::asio::any_io_executor ex, xsn::clock& clk, event_bus& bus, state_store& store,
               orchestrator_options options = {});
  /// Runs on a pool of `threads` threads that it owns and joins.
  orchestrator(std::size_t threads, xsn::clock& clk, event_bus& bus, state_store& store,
               orchestrator_options options = {});
  ~orchestrator();
  orchestrator(const orchestrator&) = delete;
  orchestrator& operator=(const orchestrator&) = delete;

  /// Makes `chart` available under `name` for `async_create` and `async_restore`.
  void add_document(std::string name, std::shared_ptr<const statechart> chart);

  /// Creates machine `id` running document `document` and persists its first snapshot.
  /// Fails with `errc::already_exists`, `errc::unknown_document` or a store error.
  template <boost::asio::completion_token_for<done_signature> Token>
  auto async_create(std::string id, std::string document, Token&& token) {
    return boost::asio::async_initiate<Token, done_signature>(
        [this](auto h, std::string i, std::string d) { do_create(std::move(i), std::move(d), std::move(h)); }, token,
        std::move(id), std::move(document));
  }

  /// Sends `ev` to machine `id`; completes when the macrostep it triggered has been persisted
  /// (an acknowledged event survives a crash). Fails with `errc::unknown_machine`,
  /// `errc::not_running` (shutting down) or the store's error.
  template <boost::asio::completion_token_for<done_signature> Token>
  auto async_send(std::string id, event ev, Token&& token) {
    return boost::asio::async_initiate<Token, done_signature>(
        [this](auto h, std::string i, event e) { do_send(std::move(i), std::move(e), std::move(h)); }, token,
        std::move(id), std::move(ev));
  }

  /// Stops machine `id` and forgets it; with `erase`, deletes its stored snapshot too.
  template <boost::asio::completion_token_for<done_signature> Token>
  auto async_stop(std::string id, bool erase, Token&& token) {
    return boost::asio::async_initiate<Token, done_signature>(
        [this, erase](auto h, std::string i) { do_stop(std::move(i), erase, std::move(h)); }, token, std::move(id));
  }

  /// Restores every machine stored under `key_prefix` whose document is known; machines already
  /// running are left alone. Completes with the number restored.
  template <boost::asio::completion_token_for<restore_signature> Token>
  auto async_restore(Token&& token) {
    return boost::asio::async_initiate<Token, restore_signature>([this](auto h) { do_restore(std::move(h)); },
                                                                 token);
  }

  /// Graceful shutdown: stops accepting, processes what the bus already queued for each machine
  /// until `deadline` (through the clock), persists every machine, waits for the writes, cancels
  /// every timer and subscription. Completes once nothing of the orchestrator runs any more.
  template <boost::asio::completion_token_for<done_signature> Token>
  auto async_shutdown(clock::duration deadline, Token&& token) {
    return boost::asio::async_initiate<Token, done_signature>(
        [this, deadline](auto h) { do_shutdown(deadline, std::move(h)); }, token);
  }

  /// Ids of the machines held, sorted. Thread-safe (a snapshot taken on the strand).
  std::vector<std::string> list() const;
  /// One machine's status, or nothing.
  std::optional<machine_status> query(std::string_view id) const;
  /// A structured health report.
  orchestrator_health health() const;
  /// The strand everything runs on.
  boost::asio::any_io_executor get_executor() const noexcept;

  struct impl;  ///< Implementation, in src/core.

 private:
  void do_create(std::string id, std::string document, boost::asio::any_completion_handler<done_signature> h);
  void do_send(std::string id, event ev, boost::asio::any_completion_handler<done_signature> h);
  void do_stop(std::string id, bool erase, boost::asio::any_completion_handler<done_signature> h);
  void do_restore(boost::asio::any_completion_handler<restore_signature> h);
  void do_shutdown(clock::duration deadline, boost::asio::any_completion_handler<done_signature> h);

  std::unique_ptr<boost::asio::thread_pool> pool_;  // only when constructed with a thread count
  std::shared_ptr<impl> impl_;
};

}  // namespace xsn
