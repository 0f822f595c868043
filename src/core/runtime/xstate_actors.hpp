#pragma once
// Private to xsn_core: the actors of XState charts. The session implements `actor_host` (the
// `xstate` datamodel reaches it from `action_scope`); promise and callback actors are
// `native_actor`s owned by their parent's child table, like invoked child sessions.
#include <xsn/runtime/actors.hpp>
#include <xsn/runtime/datamodel.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xsn::inline v0::detail {

/// What actors need from the session that owns them (all on the session's executor).
struct actor_host {
  virtual ~actor_host();
  /// `sendTo`: a child by id, else an actor of the tree by systemId, else `route` with target
  /// `xsn:<to>`; throws when none takes it.
  virtual void actor_send_to(const std::string& to, event ev) = 0;
  /// `sendParent`; throws when there is no parent.
  virtual void actor_send_parent(event ev) = 0;
  /// `spawnChild`; returns the child's id; throws on a duplicate id or systemId.
  virtual std::string actor_spawn(std::shared_ptr<const bound_actor> logic, spawn_options opts) = 0;
  /// `stopChild`; an unknown id is ignored.
  virtual void actor_stop_child(const std::string& id) = 0;
  /// An event from native child `id` (done, error, `send_back`); `final`: the child has finished.
  virtual void actor_from_child(const std::string& id, event ev, bool final) = 0;
};

/// The link through which a native actor reaches its parent; weak references to it expire
/// when the actor is stopped, so late completions (other threads, posted handlers) do nothing.
struct actor_link {
  actor_host* parent = nullptr;
  std::string id;
  class native_actor* self = nullptr;
};

/// A promise-like or callback-like actor, owned by its parent session.
class native_actor {
 public:
  virtual ~native_actor();
  /// Runs the logic (the promise function, the callback); failures become an error event.
  virtual void start() = 0;
  /// An event sent to the actor (`sendTo`, `forwardTo`).
  virtual void receive(const event& ev) = 0;
  /// True once it has completed or failed.
  bool finished() const noexcept { return finished_; }
  void set_finished() noexcept { finished_ = true; }
  /// Its input, for snapshots.
  const value& input() const noexcept { return input_; }

 protected:
  native_actor(boost::asio::any_io_executor ex, actor_host& parent, std::string id, value input);
  boost::asio::any_io_executor ex_;
  std::shared_ptr<actor_link> link_;
  value input_;
  bool finished_ = false;
};

/// Makes the native actor of `logic` (a promise or callback logic).
std::unique_ptr<native_actor> make_native_actor(const actor_logic& logic, boost::asio::any_io_executor ex,
                                                actor_host& parent, std::string id, value input);

/// `xstate.done.actor.<id>` with `{"output": output}`.
event actor_done_event(const std::string& id, value output);
/// `xstate.error.actor.<id>` with `{"error": error}`.
event actor_error_event(const std::string& id, value error);

/// The bound implementations of an `xstate` datamodel (null for another datamodel or none).
const bound_implementations* xstate_bound(datamodel& dm) noexcept;

/// The session's shortcut into an untyped, set-up `xstate` datamodel for entry content that is only
/// calls (`session::impl::call_script`): per script expression the plain action behind it, the
/// context, the datamodel as the actions' scope and the event it borrows. What `run_script` does
/// for those expressions, without its virtual call and dispatch (two calls per event in a
/// parallel machine with entry actions).
struct xstate_direct_calls {
  struct call {
    const action_fn* fn = nullptr;  ///< Null: not a plain bound action (the session uses run_script).
    const value* params = nullptr;
  };
  std::vector<call> by_expr;  ///< By expression index; empty for another datamodel or a typed context.
  value* context = nullptr;
  action_scope* scope = nullptr;
  const event* const* current = nullptr;  ///< Where the datamodel keeps the event it borrows (set_event).
};
/// The shortcut of `dm` (empty `by_expr` when it does not apply).
xstate_direct_calls xstate_calls(datamodel& dm);
/// The error message of action expression `e` of `dm` that threw `what` (null: not a std::exception),
/// the same for run_script and the shortcut.
std::string xstate_action_threw(datamodel& dm, expr_index e, const char* what);
/// Sets the input of a child machine's `xstate` datamodel before it starts: `xstate.init` carries
/// `{"input": input}` and the initial context is `context(input)` when given.
void xstate_set_input(datamodel& dm, value input, context_from_input_fn context);
/// What binding found missing or wrong, gathered so that one error names every problem.
struct bind_problems {
  std::vector<std::string> items;  ///< One entry each, e.g. `action 'x' is not provided`.
  void add(std::string problem) { items.push_back(std::move(problem)); }
  /// None; the only problem; else `N implementations are missing or do not fit: a; b; c`.
  std::optional<eval_error> error() const;
};
/// The names `p` uses (actions, guards, delays, actors), each as `action 'x' is not provided`.
bind_problems unbound_names(const xstate_program& p);
/// Binds every actor `p` names (each must be provided) and the other provided ones into
/// `out.actors`; each actor missing or failing to bind is added to `problems`.
void bind_actors(const xstate_program& p, const implementations& impl, bound_implementations& out,
                 bind_problems& problems);
/// The bound actor provided as `name` (chart slots first, then the others), or null.
std::shared_ptr<const bound_actor> find_bound_actor(const bound_implementations& b, std::string_view name);

}  // namespace xsn::inline v0::detail
