#pragma once
/// \file Actor logic for XState charts: child machines, promise-like and callback-like C++ actors.
#include <xsn/core/event.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/core/value.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <variant>

namespace xsn::inline v0 {

class statechart;

namespace detail {
struct actor_link;
}

/**
 * Settles one run of a promise actor: `resolve(output)` or `reject(error)`, once (later calls
 * are ignored). Copyable and thread-safe: the outcome is posted to the session's executor, where
 * the parent receives `xstate.done.actor.<id>` (data `{"output": ...}`) or
 * `xstate.error.actor.<id>` (data `{"error": ...}`). After the actor was stopped (its state
 * exited, `stopChild`, the session ended or was destroyed) settling does nothing and
 * `cancelled()` is true. Settle before the executor's execution context is destroyed.
 */
class promise_handle {
 public:
  /// The shared settlement state (internal).
  struct state {
    boost::asio::any_io_executor ex;
    std::weak_ptr<detail::actor_link> link;
    std::atomic<bool> settled{false};
    std::atomic<bool> cancelled{false};
  };
  /// A handle over `s` (made by the session).
  explicit promise_handle(std::shared_ptr<state> s) : s_(std::move(s)) {}
  /// Completes the actor with `output`.
  void resolve(value output) const;
  /// Fails the actor with `error`.
  void reject(value error) const;
  /// True once the actor was stopped: the work may be abandoned.
  bool cancelled() const noexcept { return s_->cancelled.load(std::memory_order_acquire); }

 private:
  void settle(bool ok, value v) const;
  std::shared_ptr<state> s_;
};

/// A promise-like actor: gets its `input` and a handle to settle, now or later, from any thread.
using promise_fn = std::function<void(const value& input, promise_handle done)>;

/**
 * What a callback-like actor gets when it starts. `send_back` sends to the parent (thread-safe,
 * posted to the executor; a no-op after the actor stopped; the event carries the actor's id as
 * `invokeid`); `receive` registers the handler for events sent to the actor (`sendTo`,
 * `forwardTo`), called on the executor.
 */
struct callback_args {
  value input;                                                        ///< The actor's `input`.
  std::function<void(event)> send_back;                               ///< To the parent.
  std::function<void(std::function<void(const event&)>)> receive;   ///< Registers a listener.
};
/// A callback-like actor: returns a cleanup run when it is stopped (may be empty). Throwing
/// fails the actor (`xstate.error.actor.<id>`).
using callback_fn = std::function<std::function<void()>(callback_args&)>;

/// Computes a child machine's initial context from its `input` (XState's `context: ({input}) => ...`).
using context_from_input_fn = std::function<value(const value& input)>;

/**
 * The logic of an actor, bound to a name by `implementations::actor` (XState's `setup({actors})`).
 * A child machine receives `xstate.init` with data `{"input": ...}`; when it reaches its top-level
 * final state its parent receives `xstate.done.actor.<id>` with `{"output": machine output}`
 * (the root's `output`, null without one); when it fails (status `error`),
 * `xstate.error.actor.<id>` with `{"error": message}`.
 */
class actor_logic {
 public:
  /// A child XState machine with its own implementations.
  struct machine_logic {
    std::shared_ptr<const statechart> chart;
    std::shared_ptr<const implementations> impl;
    context_from_input_fn context;
  };
  /// A child machine: `chart` from `parse_xstate`, bound to `impl` when the parent is bound.
  static actor_logic machine(std::shared_ptr<const statechart> chart, implementations impl = {},
                             context_from_input_fn context = {});
  /// A promise-like actor.
  static actor_logic promise(promise_fn fn);
  /// A callback-like actor.
  static actor_logic callback(callback_fn fn);

  /// The logic itself.
  std::variant<machine_logic, promise_fn, callback_fn> kind;
};

/// An actor name resolved once by `bind`: the logic and, for a child machine, its bound names.
struct bound_actor {
  std::string name;                                  ///< The name it was provided under.
  actor_logic logic;                                 ///< What runs.
  std::shared_ptr<const bound_implementations> bound;  ///< Child machines: their implementations.
};

}  // namespace xsn::inline v0
