#pragma once
/// \file Many machines in one process: created, addressed, routed and persisted together.
#include <xsn/bus/event_bus.hpp>
#include <xsn/model/statechart.hpp>
#include <xsn/core/clock.hpp>
#include <xsn/core/errors.hpp>
#include <xsn/core/event.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/session.hpp>
#include <xsn/store/state_store.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <functional>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio {
class thread_pool;
}

namespace xsn::inline v0 {

class circuit_breaker;

/// A machine message (`xsn:ID`) to a machine this orchestrator does not hold, handed to
/// `orchestrator_options::remote` (e.g. to another process through a stream).
struct remote_message {
  std::string sender;           ///< The sending machine's id.
  std::uint64_t sequence = 0;   ///< Its sequence number: per sender, increasing, never reused.
  std::string to;               ///< The receiving machine's id.
  event ev;                     ///< The event.
};

/// Called once when a `remote_message` has been handed over durably (or could not be).
using remote_done = std::function<void(std::error_code)>;

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
  /// Template for the sessions of documents added without their own `document_options`.
  session_options session;
  /// Receives every machine's runtime diagnostics (errors raised, failed guards, unbound actions,
  /// ignored events; see `<xsn/runtime/diagnostics.hpp>`) with the machine's id, after the
  /// document's own `session_options::on_diagnostic` if it has one. Called on the orchestrator's
  /// strand; must not call back into the orchestrator. Unset: logged through `xsn.orchestrator`
  /// at `warn` (ignored events at `debug`), unless the document has its own hook.
  std::function<void(const std::string& machine, const runtime_diagnostic& d)> on_diagnostic;
  /// Guards store writes when set (e.g. a `simple_circuit_breaker`); not owned.
  circuit_breaker* store_breaker = nullptr;
  /// Messages one machine may have sent and not yet seen applied (its outbox). A send beyond it
  /// fails in the sender with `error.communication`; nothing already in the outbox is dropped.
  std::size_t outbox_capacity = 1024;
  /// Idempotency keys of outside sends each machine remembers (the most recent ones); a send
  /// repeating one of them is acknowledged without being applied again. 0: keys are ignored.
  std::size_t idempotency_keys = 1024;
  /// Most machine writes gathered into one store batch (`state_store::async_write_batch`).
  std::size_t batch_entries = 256;
  /// Most bytes (snapshots and keys) in one store batch; a single larger machine goes alone.
  std::size_t batch_bytes = std::size_t{4} << 20;
  /// Store batches in flight at once (more dirty machines wait for the next batch).
  std::size_t batches_in_flight = 4;
  /// A bus message of an outbox that found the subscriber's queue full is tried again after this
  /// long (through the clock); messages after it to the bus wait behind it (they keep their order).
  clock::duration publish_retry = std::chrono::milliseconds(10);
  /// Machine messages to ids this orchestrator does not hold: when set, they go here instead of
  /// being refused (`error.communication`). A message leaves the sender's outbox once `done`
  /// reported success; an error tries it again after `publish_retry`. At most one call per sender
  /// is outstanding, so each sender's messages go out in order. The receiving side applies them
  /// once each through `async_send` with `send_options::sender` and `sequence`.
  std::function<void(remote_message, remote_done done)> remote;
  /// Told (on the orchestrator's strand) when a machine's write failed for good (store down,
  /// breaker open, fenced; not a create refused as existing), with the store's cause
  /// (`store_error::message`: `redis 127.0.0.1:6379: cannot connect: Connection refused`; it
  /// converts to `std::error_code`, so a callback taking `(const std::string&, std::error_code)`
  /// fits too). The machine runs on, ahead of what is stored, until a later write succeeds; an
  /// embedding that would rather reload it from the store (as `xsn serve` does) stops here. Must
  /// not call back into the orchestrator.
  std::function<void(const std::string& machine, const store_error& error)> on_write_error;
};

/// How the machines of one document run: what a standalone session of it would get.
struct document_options {
  /// Datamodel factory (XState bindings set it), script limits, queue capacities, native SCXML
  /// actions, `on_log`, `inspect`, and the caller's own `on_macrostep` and `on_done`, which are
  /// called after the orchestrator's bookkeeping (`on_diagnostic`: before the orchestrator's
  /// hook). `route` and `session_id` must stay empty: the orchestrator routes (`xsn:ID`,
  /// `bus:ADDRESS`) and names each session after its machine.
  session_options session;
};

/// What `query` reports about one machine.
struct machine_status {
  std::string id;                     ///< Machine id.
  std::string document;               ///< Name of the document it runs.
  bool running = false;               ///< False once it reached a top-level final state.
  session_status status = session_status::created;  ///< XState's snapshot status.
  std::vector<std::string> states;    ///< Active atomic states.
  std::uint64_t version = 0;          ///< Store version of its last persisted snapshot.
  std::size_t outbox = 0;             ///< Messages sent and not yet seen applied.
};

/// What `async_send` completes with: the machine right after the macrostep the event caused.
struct send_result {
  session_status status = session_status::created;  ///< The machine's status then.
  bool transitioned = false;         ///< Some transition was taken (false: no transition took the event).
  bool duplicate = false;            ///< The idempotency key was seen before: not applied again.
  std::vector<std::string> states;   ///< Active atomic states then.
};

/// Options of one `async_send`.
struct send_options {
  /// A repeat of a key the machine remembers (see `orchestrator_options::idempotency_keys`) is
  /// acknowledged without being applied; empty: no key.
  std::string idempotency_key;
  /// A machine message from another orchestrator (see `orchestrator_options::remote`): applied
  /// at most once per (`sender`, `sequence`) through the receiver's stored inbox; a repeat, or
  /// an older sequence, completes with `duplicate`. Empty: an outside send.
  std::string sender{};
  std::uint64_t sequence = 0;  ///< With `sender`: the message's sequence number (from 1).
};

/// One machine's persisted change, as `watch_changes` reports it.
struct machine_change {
  std::string id;                     ///< Machine id.
  session_status status = session_status::created;  ///< Its status in the persisted snapshot.
  std::uint64_t version = 0;          ///< The store version just written.
  std::vector<std::string> states;    ///< Active atomic states in it.
};

/// The orchestrator's health: a structured report, cheap to take.
struct orchestrator_health {
  bool accepting = false;             ///< False once shutdown began.
  std::size_t machines = 0;           ///< Machines held.
  std::size_t running = 0;            ///< Machines not yet in a final state.
  std::size_t bus_backlog = 0;        ///< Messages waiting in the machines' bus subscription.
  std::uint64_t events = 0;           ///< Events processed.
  std::uint64_t writes = 0;           ///< Snapshots persisted.
  std::uint64_t batches = 0;          ///< Store batches completed (each carries one or more writes).
  std::uint64_t write_conflicts = 0;  ///< Compare-and-set conflicts retried.
  std::uint64_t write_failures = 0;   ///< Writes given up (the affected sends completed with the error).
  std::uint64_t unroutable = 0;       ///< Messages addressed to a machine it does not hold (dropped).
  std::uint64_t duplicates = 0;       ///< Messages and keyed sends dropped as already applied.
  std::uint64_t undeliverable = 0;    ///< Outbox messages to a bus address nobody listens to (dropped).
  std::size_t outbox = 0;             ///< Messages in every machine's outbox.
  std::size_t writes_in_flight = 0;   ///< Store writes not yet completed.
  std::string last_error;             ///< The latest failure, empty when none.
  bool store_reachable = false;       ///< The state store's own health report says it is reachable.
  std::string store_breaker;          ///< State of `store_breaker` (`closed`, `open`, `half_open`), empty when none.
};

/**
 * Runs many machine sessions on one executor: creates them from named documents, addresses them
 * by id, routes events between them and from outside through an `event_bus`, and persists each
 * session's snapshot to a `state_store` after every macrostep with compare-and-set on the
 * store's version, gathering the machines that changed together into store batches.
 * `async_restore` brings every stored machine back after a restart.
 *
 * Messages between machines are durable and applied exactly once: what a machine sends in a
 * macrostep is written with its snapshot (its outbox) and delivered only after that write; each
 * carries (sender id, sender sequence), and a receiver keeps the highest sequence it applied per
 * sender in its own snapshot, dropping repeats. Restore delivers what is still in an outbox again.
 *
 * Threading: every member function may be called from any thread; the work runs on a strand of
 * the executor, which is also where completions are delivered unless the token says otherwise.
 * The orchestrator owns no thread unless constructed with a thread count (then it owns a pool
 * and joins it on destruction). Shut it down with `async_shutdown` before destroying it;
 * destruction without shutdown abandons everything without persisting (as a crash would), and
 * with a user executor the executor must still run (or be stopped) so the cancellations complete.
 *
 * Machines send to each other with `<send target="xsn:OTHER_ID" .../>` or XState's `sendTo`
 * (an id that is not in the machine's own actor tree), and to any bus address with
 * `target="bus:ADDRESS"`.
 */
class orchestrator {
 public:
  /// Completion signature of operations that only succeed or fail.
  using done_signature = void(std::error_code);
  /// Completion signature of `async_send`.
  using send_signature = void(std::error_code, send_result);
  /// Completion signature of `async_restore`: number of machines restored.
  using restore_signature = void(std::error_code, std::size_t);
  /// Completion signature of `async_snapshot`.
  using snapshot_signature = void(std::error_code, value);

  /// Runs on `ex` (through a strand). `bus`, `store` and `clk` must outlive the orchestrator.
  orchestrator(boost::asio::any_io_executor ex, xsn::clock& clk, event_bus& bus, state_store& store,
               orchestrator_options options = {});
  /// Runs on a pool of `threads` threads that it owns and joins.
  orchestrator(std::size_t threads, xsn::clock& clk, event_bus& bus, state_store& store,
               orchestrator_options options = {});
  ~orchestrator();
  orchestrator(const orchestrator&) = delete;
  orchestrator& operator=(const orchestrator&) = delete;

  /// Makes `chart` available under `name` for `async_create` and `async_restore`, its sessions
  /// set up by `options.session` (`orchestrator_options::session` when omitted). Refused with a
  /// message (nothing added) when the document's datamodel does not match what runs it (an
  /// XState machine with a datamodel factory of another kind, an SCXML document with XState
  /// bindings, an XState machine naming actions, guards, delays or actors that are not bound),
  /// or when `route` or `session_id` is set. A name added again is replaced for machines
  /// created or restored later.
  result<void> add_document(std::string name, std::shared_ptr<const statechart> chart);
  /// `add_document` with the document's own session options.
  result<void> add_document(std::string name, std::shared_ptr<const statechart> chart, document_options options);
  /// `add_document` of an XState machine with its names already bound (`xsn::bind`).
  result<void> add_document(std::string name, std::shared_ptr<const statechart> chart,
                            std::shared_ptr<const bound_implementations> bound, document_options options = {});
  /// `add_document` of an XState machine with its C++ implementations (`xsn::implementations`),
  /// bound here, once.
  result<void> add_document(std::string name, std::shared_ptr<const statechart> chart, const implementations& impl,
                            document_options options = {});
  /// `add_document` of an XState machine with a typed context (`<xsn/runtime/typed.hpp>`): every
  /// machine starts from `initial`.
  template <class Typed, class Ctx>
  result<void> add_document(std::string name, std::shared_ptr<const statechart> chart, const Typed& impl, Ctx initial,
                            document_options options = {}) {
    auto bound = bind(*chart, impl, std::move(initial));
    if (!bound) return bound.error();
    return add_document(std::move(name), std::move(chart), std::move(*bound), std::move(options));
  }

  /// Creates machine `id` running document `document` and persists its first snapshot.
  /// Fails with `errc::already_exists`, `errc::unknown_document` or a store error.
  template <boost::asio::completion_token_for<done_signature> Token>
  auto async_create(std::string id, std::string document, Token&& token) {
    return async_create(std::move(id), std::move(document), value{}, std::forward<Token>(token));
  }
  /// `async_create` with the machine's input (`session::set_input`): SCXML data values by id,
  /// XState's `input`. Null: none.
  template <boost::asio::completion_token_for<done_signature> Token>
  auto async_create(std::string id, std::string document, value input, Token&& token) {
    return boost::asio::async_initiate<Token, done_signature>(
        [this](auto h, std::string i, std::string d, value in) {
          do_create(std::move(i), std::move(d), std::move(in), std::move(h));
        },
        token, std::move(id), std::move(document), std::move(input));
  }

  /**
   * Sends `ev` to machine `id`; completes when the macrostep it triggered has been persisted
   * (an acknowledged event survives a crash), with the machine's status then and whether any
   * transition took the event. Fails with `errc::unknown_machine`, `errc::not_running` (the
   * machine ended, or shutting down) or the store's error. With `opts.idempotency_key`, a repeat
   * of a key the machine remembers completes (`duplicate` set) without applying the event again.
   * Completion signature: void(std::error_code, xsn::send_result)
   */
  template <boost::asio::completion_token_for<send_signature> Token>
  auto async_send(std::string id, event ev, send_options opts, Token&& token) {
    return boost::asio::async_initiate<Token, send_signature>(
        [this](auto h, std::string i, event e, send_options o) {
          do_send(std::move(i), std::move(e), std::move(o), std::move(h));
        },
        token, std::move(id), std::move(ev), std::move(opts));
  }
  /// `async_send` without an idempotency key.
  /// Completion signature: void(std::error_code, xsn::send_result)
  template <boost::asio::completion_token_for<send_signature> Token>
  auto async_send(std::string id, event ev, Token&& token) {
    return async_send(std::move(id), std::move(ev), send_options{}, std::forward<Token>(token));
  }

  /// Stops machine `id` and forgets it; with `erase`, deletes its stored snapshot too (and with it
  /// the messages still in its outbox).
  template <boost::asio::completion_token_for<done_signature> Token>
  auto async_stop(std::string id, bool erase, Token&& token) {
    return boost::asio::async_initiate<Token, done_signature>(
        [this, erase](auto h, std::string i) { do_stop(std::move(i), erase, std::move(h)); }, token, std::move(id));
  }

  /// Restores every machine stored under `key_prefix` whose document is known; machines already
  /// running are left alone. Then delivers again what the restored machines' outboxes hold
  /// (receivers drop what they had applied). Completes with the number restored.
  template <boost::asio::completion_token_for<restore_signature> Token>
  auto async_restore(Token&& token) {
    return boost::asio::async_initiate<Token, restore_signature>([this](auto h) { do_restore(std::move(h)); },
                                                                 token);
  }

  /// Machine `id` in full, as JSON: `{id, document, version, status, states, outbox, snapshot}`
  /// with `snapshot` as `session::snapshot()` gives it (configuration, XState `value`,
  /// `context` or the datamodel, queued and delayed events, children). Fails with
  /// `errc::unknown_machine`. Completion signature: void(std::error_code, xsn::value)
  template <boost::asio::completion_token_for<snapshot_signature> Token>
  auto async_snapshot(std::string id, Token&& token) {
    return boost::asio::async_initiate<Token, snapshot_signature>(
        [this](auto h, std::string i) { do_snapshot(std::move(i), std::move(h)); }, token, std::move(id));
  }

  /// Graceful shutdown: stops accepting, processes what the bus already queued for each machine
  /// until `deadline` (through the clock), persists every machine, waits for the writes, cancels
  /// every timer and subscription. Completes once nothing of the orchestrator runs any more.
  /// Messages still in outboxes stay there, persisted: the next `async_restore` delivers them.
  template <boost::asio::completion_token_for<done_signature> Token>
  auto async_shutdown(clock::duration deadline, Token&& token) {
    return boost::asio::async_initiate<Token, done_signature>(
        [this, deadline](auto h) { do_shutdown(deadline, std::move(h)); }, token);
  }

  /**
   * Calls `fn` on the strand after every persisted write of a machine (its id, status, the
   * version written and its active states), until the handle is destroyed. When `reset` or the
   * handle's destructor returns, `fn` is not running and will not run again (unless called from
   * inside `fn`, which then just finishes). `fn` must not block; it may call the orchestrator.
   */
  [[nodiscard]] watch_handle watch_changes(std::function<void(const machine_change&)> fn);

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
  void do_create(std::string id, std::string document, value input,
                 boost::asio::any_completion_handler<done_signature> h);
  void do_send(std::string id, event ev, send_options opts, boost::asio::any_completion_handler<send_signature> h);
  void do_stop(std::string id, bool erase, boost::asio::any_completion_handler<done_signature> h);
  void do_restore(boost::asio::any_completion_handler<restore_signature> h);
  void do_snapshot(std::string id, boost::asio::any_completion_handler<snapshot_signature> h);
  void do_shutdown(clock::duration deadline, boost::asio::any_completion_handler<done_signature> h);

  std::unique_ptr<boost::asio::thread_pool> pool_;  // only when constructed with a thread count
  std::shared_ptr<impl> impl_;
};

}  // namespace xsn::inline v0
