#pragma once
/// \file Writing XState machines in C++, without a document: a builder onto the same model.
#include <xsn/model/statechart.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/typed.hpp>

#include <chrono>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace xsn::inline v0 {

/// An action use: a name bound through `implementations` (with optional `params`) or an inline
/// callable (see `make_action` for the parameters it may take), bound when the machine is built.
class action_ref {
 public:
  /// The action bound to `name`.
  action_ref(const char* name) : name_(name) {}  // NOLINT(google-explicit-constructor)
  /// The action bound to `name`.
  action_ref(std::string name) : name_(std::move(name)) {}  // NOLINT(google-explicit-constructor)
  /// The action bound to `name`, given `params`.
  action_ref(std::string name, value params) : name_(std::move(name)), params_(std::move(params)) {}
  /// An inline action.
  template <class F>
    requires(!std::convertible_to<F, std::string> && detail::has_signature<F>)
  action_ref(F f) : fn_(std::make_shared<erased_action>(make_action(std::move(f)))) {}  // NOLINT

  const std::string& name() const noexcept { return name_; }              ///< Empty for inline.
  const value& params() const noexcept { return params_; }                ///< `params` (null when none).
  const std::shared_ptr<const erased_action>& fn() const noexcept { return fn_; }  ///< Inline callable.

 private:
  std::string name_;
  value params_;
  std::shared_ptr<const erased_action> fn_;
};

/// A guard: a name bound through `implementations` (with optional `params`), an inline predicate,
/// or a combinator of guards (`guard_and`, `guard_or`, `guard_not`, `state_in`, below).
class guard_ref {
 public:
  /// What the guard is.
  enum class kind : std::uint8_t { name, inline_fn, all, any, negate, state_in };
  /// The guard bound to `name`.
  guard_ref(const char* name) : name_(name) {}  // NOLINT(google-explicit-constructor)
  /// The guard bound to `name`.
  guard_ref(std::string name) : name_(std::move(name)) {}  // NOLINT(google-explicit-constructor)
  /// The guard bound to `name`, given `params`.
  guard_ref(std::string name, value params) : name_(std::move(name)), params_(std::move(params)) {}
  /// An inline predicate.
  template <class F>
    requires(!std::convertible_to<F, std::string> && detail::has_signature<F>)
  guard_ref(F f) : kind_(kind::inline_fn), fn_(std::make_shared<erased_guard>(make_guard(std::move(f)))) {}  // NOLINT

  /// A combinator of `ch` (`all`, `any`, `negate`) or, with `state`, a `stateIn` guard.
  static guard_ref combine(kind k, std::vector<guard_ref> ch, std::string state = {}) {
    guard_ref g(k, std::move(ch));
    g.name_ = std::move(state);
    return g;
  }

  kind type() const noexcept { return kind_; }                             ///< What it is.
  const std::string& name() const noexcept { return name_; }               ///< Name or `stateIn` state.
  const value& params() const noexcept { return params_; }                 ///< `params` of a name.
  const std::shared_ptr<const erased_guard>& fn() const noexcept { return fn_; }  ///< Inline predicate.
  const std::vector<guard_ref>& children() const noexcept { return children_; }   ///< Of combinators.

 private:
  guard_ref(kind k, std::vector<guard_ref> ch) : kind_(k), children_(std::move(ch)) {}
  kind kind_ = kind::name;
  std::string name_;
  value params_;
  std::shared_ptr<const erased_guard> fn_;
  std::vector<guard_ref> children_;
};

/// True when every one of `gs` holds (XState's `and`).
inline guard_ref guard_and(std::vector<guard_ref> gs) { return guard_ref::combine(guard_ref::kind::all, std::move(gs)); }
/// True when one of `gs` holds (XState's `or`).
inline guard_ref guard_or(std::vector<guard_ref> gs) { return guard_ref::combine(guard_ref::kind::any, std::move(gs)); }
/// True when `g` does not hold (XState's `not`).
inline guard_ref guard_not(guard_ref g) { return guard_ref::combine(guard_ref::kind::negate, {std::move(g)}); }
/// True when state `state` (`"#id"` or a path from the machine's root like `"a.b"`) is active (`stateIn`).
inline guard_ref state_in(std::string state) { return guard_ref::combine(guard_ref::kind::state_in, {}, std::move(state)); }

/// A transition of a state: made by `on`, `always`, `after` or `on_done`, then refined.
class transition {
 public:
  /// Where it comes from.
  enum class source : std::uint8_t { on, always, after, on_done };

  /// Adds a target: a sibling key (`"b"`), a child path (`".child"`) or an id (`"#id"`).
  transition& target(std::string t) {
    targets_.push_back(std::move(t));
    return *this;
  }
  /// Only taken when `g` holds.
  transition& guard(guard_ref g) {
    guard_ = std::move(g);
    return *this;
  }
  /// Appends actions (names, `action_ref`s or inline callables), run in order.
  template <class... A>
  transition& actions(A&&... a) {
    (actions_.emplace_back(std::forward<A>(a)), ...);
    return *this;
  }
  /// XState v5 `reenter`: exit and re-enter the source when targeting itself or a descendant.
  transition& reenter(bool r = true) {
    reenter_ = r;
    return *this;
  }

  source from() const noexcept { return from_; }                           ///< How it is triggered.
  const std::string& descriptor() const noexcept { return event_; }        ///< `on`: the descriptor.
  std::chrono::milliseconds delay() const noexcept { return delay_; }      ///< `after` in ms.
  const std::string& delay_name() const noexcept { return delay_name_; }   ///< `after` by name.
  const std::shared_ptr<const erased_delay>& inline_delay() const noexcept { return delay_fn_; }  ///< Inline.
  const std::vector<std::string>& targets() const noexcept { return targets_; }  ///< Targets.
  const std::optional<guard_ref>& guard_of() const noexcept { return guard_; }   ///< The guard.
  const std::vector<action_ref>& actions_of() const noexcept { return actions_; }  ///< Actions.
  bool reenters() const noexcept { return reenter_; }                      ///< `reenter`.

  /// A transition of kind `s`; use the free functions `on`, `always`, `after`, `on_done`.
  static transition make(source s, std::string event, std::vector<std::string> targets) {
    transition t;
    t.from_ = s;
    t.event_ = std::move(event);
    t.targets_ = std::move(targets);
    return t;
  }
  /// Sets the delay of an `after` transition.
  transition& set_delay(std::chrono::milliseconds ms, std::string name, std::shared_ptr<const erased_delay> fn) {
    delay_ = ms;
    delay_name_ = std::move(name);
    delay_fn_ = std::move(fn);
    return *this;
  }

 private:
  source from_ = source::on;
  std::string event_;
  std::chrono::milliseconds delay_{0};
  std::string delay_name_;
  std::shared_ptr<const erased_delay> delay_fn_;
  std::vector<std::string> targets_;
  std::optional<guard_ref> guard_;
  std::vector<action_ref> actions_;
  bool reenter_ = false;
};

/// Transition on event descriptor `event` (`"a.b"`, `"a.*"`, `"*"`) to `target` (none: targetless).
inline transition on(std::string event, std::string target = {}) {
  return transition::make(transition::source::on, std::move(event), target.empty() ? std::vector<std::string>{} : std::vector<std::string>{std::move(target)});
}
/// Transition on `event` to several targets (in parallel regions).
inline transition on(std::string event, std::initializer_list<std::string> targets) {
  return transition::make(transition::source::on, std::move(event), targets);
}
/// Transition on the typed event `E` (descriptor `E::name`); its actions and guards may take `const E&`.
template <detail::named_event E>
transition on(std::string target = {}) {
  detail::check_event_type<E>();
  return on(std::string(std::string_view(E::name)), std::move(target));
}
/// Eventless transition (XState's `always`).
inline transition always(std::string target = {}) {
  return transition::make(transition::source::always, {}, target.empty() ? std::vector<std::string>{} : std::vector<std::string>{std::move(target)});
}
/// Delayed transition, `ms` after the state was entered (XState's `after`).
inline transition after(std::chrono::milliseconds ms, std::string target = {}) {
  auto t = transition::make(transition::source::after, {}, target.empty() ? std::vector<std::string>{} : std::vector<std::string>{std::move(target)});
  t.set_delay(ms, {}, nullptr);
  return t;
}
/// Delayed transition after the named delay `delay` (bound through `implementations::delay`).
inline transition after(std::string delay, std::string target = {}) {
  auto t = transition::make(transition::source::after, {}, target.empty() ? std::vector<std::string>{} : std::vector<std::string>{std::move(target)});
  t.set_delay(std::chrono::milliseconds(0), std::move(delay), nullptr);
  return t;
}
/// Delayed transition after the delay `f` computes when the state is entered (see `make_delay`).
template <class F>
  requires(!std::convertible_to<F, std::string> && detail::has_signature<F>)
transition after(F f, std::string target = {}) {
  auto t = transition::make(transition::source::after, {}, target.empty() ? std::vector<std::string>{} : std::vector<std::string>{std::move(target)});
  t.set_delay(std::chrono::milliseconds(0), {}, std::make_shared<erased_delay>(make_delay(std::move(f))));
  return t;
}
/// Transition when this compound or parallel state is done (XState's `onDone`).
inline transition on_done(std::string target = {}) {
  return transition::make(transition::source::on_done, {}, target.empty() ? std::vector<std::string>{} : std::vector<std::string>{std::move(target)});
}

/**
 * An actor a state runs while it is active (XState's `invoke`): `src` names actor logic bound
 * with `actor(name, logic)` on the implementations `build` gets. It starts after the macrostep
 * that entered the state and stops when the state is exited. Its completion and failure are the
 * events `xstate.done.actor.<id>` and `xstate.error.actor.<id>`, which `on_done` and `on_error`
 * handle.
 * ```cpp
 * .state("loading", xsn::invoke("fetch").input({{"id", 7}}).on_done("ready").on_error("failed"))
 * ```
 */
class invoke_config {
 public:
  /// Invokes the actor logic named `src`.
  explicit invoke_config(std::string src) : src_(std::move(src)) {}
  /// The actor's id (default, as XState: `<index>.<state id>`).
  invoke_config& id(std::string id) {
    id_ = std::move(id);
    return *this;
  }
  /// A `systemId`, by which any actor of the tree can `send_to` it.
  invoke_config& system_id(std::string id) {
    system_id_ = std::move(id);
    return *this;
  }
  /// The actor's input (static JSON).
  invoke_config& input(value v) {
    input_ = std::move(v);
    return *this;
  }
  /// Handles the actor's completion (`xstate.done.actor.<id>`, its output in `event.data`) with `t`:
  /// made by `xsn::on_done(...)` and refined (`guard`, `actions`); only its targets and refinements
  /// are used.
  invoke_config& on_done(transition t) {
    done_.push_back(std::move(t));
    return *this;
  }
  /// Goes to `target` (none: targetless) when the actor completes.
  invoke_config& on_done(std::string target) { return on_done(xsn::on_done(std::move(target))); }
  /// Handles the actor's failure (`xstate.error.actor.<id>`, the error in `event.data`) with `t`.
  invoke_config& on_error(transition t) {
    error_.push_back(std::move(t));
    return *this;
  }
  /// Goes to `target` (none: targetless) when the actor fails.
  invoke_config& on_error(std::string target) { return on_error(xsn::on_done(std::move(target))); }

  const std::string& src() const noexcept { return src_; }                    ///< The logic's name.
  const std::string& id_of() const noexcept { return id_; }                   ///< The id, or empty.
  const std::string& system_id_of() const noexcept { return system_id_; }     ///< The systemId, or empty.
  const std::optional<value>& input_of() const noexcept { return input_; }    ///< The input, if any.
  const std::vector<transition>& done_of() const noexcept { return done_; }   ///< `onDone`.
  const std::vector<transition>& error_of() const noexcept { return error_; } ///< `onError`.

 private:
  std::string src_, id_, system_id_;
  std::optional<value> input_;
  std::vector<transition> done_, error_;
};

/// Invokes the actor logic named `src` (see `invoke_config`).
inline invoke_config invoke(std::string src) { return invoke_config(std::move(src)); }

class state_config;

namespace detail {

/// Everything said about one state node; see `state_config`.
struct node_data {
  std::optional<state_kind> kind;
  history_kind history = history_kind::none;
  std::vector<std::string> history_target;
  std::optional<std::string> id;
  std::optional<std::string> initial;
  std::vector<action_ref> entry, exit;
  std::vector<transition> transitions;
  std::vector<invoke_config> invokes;
  std::vector<std::pair<std::string, std::shared_ptr<const state_config>>> children;
  std::optional<value> output;
  std::vector<std::string> tags;
  std::string description;

  void merge(const node_data& o);
};

/// The fluent methods shared by `state_config` and `machine_builder`, returning `Self&`.
template <class Self>
class node_methods {
 public:
  /// The child state to enter by default (compound states).
  Self& initial(std::string key) {
    data_.initial = std::move(key);
    return self();
  }
  /// An explicit id, for `#id` targets (default: the path from the machine id, `m.a.b`).
  Self& id(std::string id) {
    data_.id = std::move(id);
    return self();
  }
  /// Adds child state `key`, made of `parts`: `state_config`s (merged), `transition`s and
  /// `invoke_config`s.
  template <class... Parts>
  Self& state(std::string key, Parts&&... parts);
  /// Adds a transition.
  Self& with(transition t) {
    data_.transitions.push_back(std::move(t));
    return self();
  }
  /// Adds an invoked actor (see `invoke_config`).
  Self& with(invoke_config i) {
    data_.invokes.push_back(std::move(i));
    return self();
  }
  /// Adds a transition on `event` to `target` (see `xsn::on`); returns this node, not the transition.
  Self& on(std::string event, std::string target) { return with(xsn::on(std::move(event), std::move(target))); }
  /// Appends entry actions.
  template <class... A>
  Self& entry(A&&... a) {
    (data_.entry.emplace_back(std::forward<A>(a)), ...);
    return self();
  }
  /// Appends exit actions.
  template <class... A>
  Self& exit(A&&... a) {
    (data_.exit.emplace_back(std::forward<A>(a)), ...);
    return self();
  }
  /// Makes this a parallel state (every child region active at once).
  Self& parallel() {
    data_.kind = state_kind::parallel;
    return self();
  }
  /// Makes this a final state.
  Self& final_state() {
    data_.kind = state_kind::final_state;
    return self();
  }
  /// `output` of a final state (or of the machine); static JSON.
  Self& output(value v) {
    data_.output = std::move(v);
    return self();
  }
  /// XState `tags`.
  Self& tags(std::vector<std::string> t) {
    data_.tags = std::move(t);
    return self();
  }
  /// XState `description`.
  Self& description(std::string d) {
    data_.description = std::move(d);
    return self();
  }
  /// Everything said so far.
  const node_data& data() const noexcept { return data_; }

 protected:
  node_data data_;

 private:
  Self& self() noexcept { return static_cast<Self&>(*this); }
};

}  // namespace detail

/// The configuration of one state: its kind, id, initial child, children, entry/exit actions and
/// transitions. Made with `xsn::state()` (or `entry`, `parallel`, `history`...) and refined fluently.
class state_config : public detail::node_methods<state_config> {
 public:
  /// Merges `other` into this one: lists are appended, settings of `other` win.
  state_config& merge(const state_config& other) {
    data_.merge(other.data_);
    return *this;
  }
  /// Makes this a history state of `kind` (shallow or deep), with an optional default `target`.
  state_config& history(history_kind kind, std::string target = {}) {
    data_.kind = state_kind::history;
    data_.history = kind;
    if (!target.empty()) data_.history_target.push_back(std::move(target));
    return *this;
  }
  /// Adds part `p` (a `state_config` or a `transition`).
  state_config& add(const state_config& p) { return merge(p); }
  /// Adds part `p` (a `state_config` or a `transition`).
  state_config& add(transition p) { return with(std::move(p)); }
  /// Adds part `p`, an invoked actor.
  state_config& add(invoke_config p) { return with(std::move(p)); }
};

template <class Self>
template <class... Parts>
Self& detail::node_methods<Self>::state(std::string key, Parts&&... parts) {
  auto child = std::make_shared<state_config>();
  (child->add(std::forward<Parts>(parts)), ...);
  data_.children.emplace_back(std::move(key), std::move(child));
  return self();
}

/// An empty state configuration (an atomic state until given children).
inline state_config state() { return {}; }
/// A state with entry actions.
template <class... A>
state_config entry(A&&... a) {
  state_config s;
  s.entry(std::forward<A>(a)...);
  return s;
}
/// A state with exit actions.
template <class... A>
state_config exit(A&&... a) {
  state_config s;
  s.exit(std::forward<A>(a)...);
  return s;
}
/// A final state, optionally with `output`.
inline state_config final_state(value output = nullptr) {
  state_config s;
  s.final_state();
  if (!output.is_null()) s.output(std::move(output));
  return s;
}
/// A parallel state.
inline state_config parallel() {
  state_config s;
  s.parallel();
  return s;
}
/// A compound state entering `initial` by default.
inline state_config compound(std::string initial) {
  state_config s;
  s.initial(std::move(initial));
  return s;
}
/// A history state (shallow by default) with an optional default `target`.
inline state_config history(history_kind kind = history_kind::shallow, std::string target = {}) {
  state_config s;
  s.history(kind, std::move(target));
  return s;
}

/// A machine built in C++, with its implementations bound: what sessions run.
struct built_machine {
  std::shared_ptr<const statechart> chart;                ///< The model (XState semantics).
  std::shared_ptr<const bound_implementations> bound;     ///< Its actions, guards and delays.
  value config;  ///< The equivalent XState JSON config (inline callables under generated names).
  /// The datamodel factory for `session_options::make_datamodel`.
  datamodel_factory datamodel() const { return xstate_datamodel(bound); }
};

namespace detail {

/// Turns a machine's nodes into an XState config plus a table of the inline callables under
/// generated names, checks what JSON cannot express (duplicate keys, context types), and parses it.
result<built_machine> build_machine(const std::string& machine_id, const node_data& root, const value& context,
                                    const std::type_info& context_type, const implementations* named,
                                    const typed_table* typed_named,
                                    std::function<std::unique_ptr<context_holder>()> make_context);

}  // namespace detail

/**
 * A machine written in C++, the counterpart of XState's `createMachine(config)` with
 * `setup({actions, guards, delays, actors})`: states are added with `state(key, parts...)`,
 * transitions with `on`/`after`/`always`/`on_done`, invoked actors with `invoke`, and actions and
 * guards are names resolved through `implementations` or inline callables. `build` produces the same model `parse_xstate` makes
 * from the equivalent JSON (it goes through it), bound once; errors name the state path.
 *
 * `Ctx` is the context type: `value` (JSON) by default, or a user type held natively (see
 * `typed_context`), whose inline callables take `Ctx&` (actions) or `const Ctx&` (guards).
 * ```cpp
 * auto m = xsn::machine("light").initial("green")
 *   .state("green", xsn::on("TIMER", "yellow"))
 *   .state("yellow", xsn::after(100ms, "red"))
 *   .state("red", xsn::on("TIMER", "green").actions(count))
 *   .build(impls);
 * ```
 */
template <class Ctx = value>
class machine_builder : public detail::node_methods<machine_builder<Ctx>> {
  static_assert((detail::check_context_type<Ctx>(), true));

 public:
  /// A machine with id `id` (state ids are `id.a.b`).
  explicit machine_builder(std::string id, Ctx context = Ctx{}) : id_(std::move(id)), context_(std::move(context)) {}
  /// The initial context of every session.
  machine_builder& context(Ctx c) {
    context_ = std::move(c);
    return *this;
  }
  /// Builds the chart and binds it to `named` (for JSON contexts) and the inline callables.
  /// Fails with every problem found, one per line, naming the state path.
  result<built_machine> build(const implementations& named = {}) const
    requires std::same_as<Ctx, value>
  {
    return detail::build_machine(id_, this->data_, context_, typeid(value), &named, nullptr, nullptr);
  }
  /// Builds the chart and binds it to `named` and the inline callables, with a typed context.
  result<built_machine> build(const typed_implementations<Ctx>& named = {}) const
    requires(!std::same_as<Ctx, value>)
  {
    auto make = [c = context_]() -> std::unique_ptr<context_holder> { return std::make_unique<detail::holder<Ctx>>(c); };
    return detail::build_machine(id_, this->data_, nullptr, typeid(Ctx), &named.actors(), &named.table(), std::move(make));
  }

 private:
  std::string id_;
  Ctx context_;
};

/// Starts a machine with a JSON context.
inline machine_builder<value> machine(std::string id) { return machine_builder<value>(std::move(id)); }
/// Starts a machine with a context of C++ type `Ctx`, initially `context`.
template <class Ctx>
machine_builder<Ctx> machine(std::string id, Ctx context = Ctx{}) {
  return machine_builder<Ctx>(std::move(id), std::move(context));
}

}  // namespace xsn::inline v0
