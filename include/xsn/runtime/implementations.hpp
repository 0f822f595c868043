#pragma once
/// \file Native C++ implementations for XState charts: XState's `setup()`/`provide()` for C++.
#include <xsn/runtime/datamodel.hpp>
#include <xsn/core/event.hpp>
#include <xsn/core/value.hpp>

#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <string>
#include <typeinfo>
#include <unordered_map>
#include <vector>

namespace xsn::inline v0 {

class statechart;
struct xstate_program;
class actor_logic;  // <xsn/runtime/actors.hpp>
struct bound_actor;  // <xsn/runtime/actors.hpp>

/// How `action_scope::spawn` starts a child actor (XState's `spawnChild` options).
struct spawn_options {
  std::string id;         ///< The child's id; generated when empty.
  std::string system_id;  ///< Registers the child in the system (visible to the whole tree).
  value input;            ///< The child's `input`.
};

/// What a native action may do besides changing the context.
class action_scope {
 public:
  virtual ~action_scope();
  /// Raises `ev` on the machine's internal queue, like XState's `raise({type})`.
  virtual void raise(event ev) = 0;
  /// Sends `ev` to the child actor `to` (by id; else the actor of the tree with systemId `to`;
  /// else, when `session_options::route` is set, to target `xsn:<to>` through it), XState's
  /// `sendTo`. Throws (the machine fails) when there is none.
  virtual void send_to(const std::string& to, event ev);
  /// Sends `ev` to the parent machine (XState's `sendParent`). Throws when there is none.
  virtual void send_parent(event ev);
  /// Starts a child actor of the logic provided as `src` (XState's `spawnChild`); returns its id.
  virtual std::string spawn(const std::string& src, spawn_options opts = {});
  /// Stops the child actor `id` (XState's `stopChild`); an unknown id is ignored.
  virtual void stop_child(const std::string& id);
};

/// A named action: may change `context`; `params` are the use site's `params` (null when none).
using action_fn = std::function<void(value& context, const event& ev, const value& params, action_scope& self)>;
/// A named guard; must not change anything.
using guard_fn = std::function<bool(const value& context, const event& ev, const value& params)>;
/// A named delay (a non-numeric key of `after`), computed when the state is entered.
using delay_fn = std::function<std::chrono::milliseconds(const value& context, const event& ev)>;

/**
 * Named actions, guards and delays for XState charts, the C++ counterpart of XState's
 * `setup({actions, guards, delays})` and `machine.provide(...)`. Names are looked up once, by
 * `bind`, never per event. An action or guard that throws puts the session in status `error`.
 */
class implementations {
 public:
  /// Binds action `name` to `fn`.
  implementations& action(std::string name, action_fn fn);
  /// Binds action `name` to a callable taking `(value& context, const event&, const value& params)`.
  template <class F>
    requires std::invocable<F&, value&, const event&, const value&>
  implementations& action(std::string name, F f) {
    return action(std::move(name), action_fn([f = std::move(f)](value& ctx, const event& ev, const value& p, action_scope&) mutable { f(ctx, ev, p); }));
  }
  /// Binds guard `name` to `fn`.
  implementations& guard(std::string name, guard_fn fn);
  /// Binds delay `name` to `fn`.
  implementations& delay(std::string name, delay_fn fn);
  /// Binds delay `name` to a fixed duration.
  implementations& delay(std::string name, std::chrono::milliseconds ms);
  /// Binds actor logic `name` (an invoke's or spawnChild's `src`); see `<xsn/runtime/actors.hpp>`.
  implementations& actor(std::string name, actor_logic logic);
  /// Adds or replaces the implementations of `other` (XState's `provide`).
  implementations& provide(const implementations& other);

  /// The bound action `name`, or null.
  const action_fn* find_action(const std::string& name) const;
  /// The bound guard `name`, or null.
  const guard_fn* find_guard(const std::string& name) const;
  /// The bound delay `name`, or null.
  const delay_fn* find_delay(const std::string& name) const;
  /// The actor logic `name`, or null.
  const actor_logic* find_actor(const std::string& name) const;
  /// The names of the provided actor logic, sorted.
  std::vector<std::string> actor_names() const;

 private:
  std::unordered_map<std::string, action_fn> actions_;
  std::unordered_map<std::string, guard_fn> guards_;
  std::unordered_map<std::string, delay_fn> delays_;
  std::unordered_map<std::string, std::shared_ptr<const actor_logic>> actors_;
};

/// A context of a user C++ type, held natively by the `xstate` datamodel (no JSON per event);
/// made by `bind` of `<xsn/runtime/typed.hpp>`. JSON is used only for snapshots.
class context_holder {
 public:
  virtual ~context_holder();
  /// The context object (of type `type()`).
  virtual void* get() noexcept = 0;
  /// The C++ type of the context.
  virtual const std::type_info& type() const noexcept = 0;
  /// The context as JSON (`boost::json::value_from`), for `session::snapshot`.
  virtual value save() const = 0;
  /// Replaces the context by `saved` converted back (`boost::json::value_to`); fails, changing
  /// nothing, when `saved` does not convert.
  virtual result<void> restore(const value& saved) = 0;
};
/// An action on a typed context; `ctx` points to the `context_holder`'s object.
using typed_action_fn = std::function<void(void* ctx, const event& ev, const value& params, action_scope& self)>;
/// A guard on a typed context.
using typed_guard_fn = std::function<bool(const void* ctx, const event& ev, const value& params)>;
/// A named delay on a typed context.
using typed_delay_fn = std::function<std::chrono::milliseconds(const void* ctx, const event& ev)>;

/// An XState chart's names resolved to implementations, in the chart's slot order.
struct bound_implementations {
  const xstate_program* program = nullptr;  ///< The chart's program these slots belong to.
  std::vector<action_fn> actions;           ///< By `xstate_program::action_names` slot.
  std::vector<guard_fn> guards;             ///< By `xstate_program::guard_names` slot.
  std::vector<delay_fn> delays;             ///< By `xstate_program::delay_names` slot.
  std::vector<std::shared_ptr<const bound_actor>> actors;  ///< By `xstate_program::actor_names` slot.
  /// Typed-context charts: makes each session's context; when set, the `typed_*` slots are used
  /// instead of `actions`, `guards` and `delays`.
  std::function<std::unique_ptr<context_holder>()> make_context;
  std::vector<typed_action_fn> typed_actions;  ///< By `xstate_program::action_names` slot.
  std::vector<typed_guard_fn> typed_guards;    ///< By `xstate_program::guard_names` slot.
  std::vector<typed_delay_fn> typed_delays;    ///< By `xstate_program::delay_names` slot.
};

/// Resolves every action, guard, delay and actor name `chart` uses, once. Fails when `chart` is not
/// an XState chart, or with every name not provided at once: one (`action 'x' is not provided`)
/// or `N implementations are missing or do not fit: action 'x' is not provided; guard 'g' ...`.
result<std::shared_ptr<const bound_implementations>> bind(const statechart& chart, const implementations& impl);

/// The datamodel of XState charts: the context as JSON, guards, actions and delays from `bound`
/// (null: the chart must name none). Set it as `session_options::make_datamodel`.
datamodel_factory xstate_datamodel(std::shared_ptr<const bound_implementations> bound);

/// One `xstate` datamodel (what `xstate_datamodel` makes).
std::unique_ptr<datamodel> make_xstate_datamodel(std::shared_ptr<const bound_implementations> bound);

/// The context of a session's `xstate` datamodel; null for any other datamodel and for a typed
/// context (see `xstate_typed_context`).
value* xstate_context(datamodel& dm) noexcept;

/// The typed context of a session's `xstate` datamodel; null for a JSON context or another datamodel.
context_holder* xstate_typed_context(datamodel& dm) noexcept;

}  // namespace xsn::inline v0
