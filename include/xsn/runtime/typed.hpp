#pragma once
/// \file Typed contexts and typed events for XState charts: C++ types instead of JSON.
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

#include <chrono>
#include <concepts>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>

namespace xsn::inline v0 {

namespace detail {

/// True when `T` converts to and from JSON (`boost::json::value_from`/`value_to`, e.g. through
/// `tag_invoke`). Boost.JSON's own templates accept any type and fail deep inside; this does not.
template <class T>
inline constexpr bool json_convertible = boost::json::has_value_from<T>::value && boost::json::has_value_to<T>::value;

/// A struct naming an event (`static constexpr std::string_view name`), JSON or not.
template <class E>
concept named_event = requires {
  { E::name } -> std::convertible_to<std::string_view>;
};

/// Fails the build at the use of `E` with a readable message when `E` does not convert to JSON.
template <class E>
constexpr void check_event_type() {
  static_assert(json_convertible<E>,
                "xsn::typed: an event type must be convertible to JSON: define "
                "tag_invoke(boost::json::value_from_tag, boost::json::value&, const E&) and "
                "tag_invoke(boost::json::value_to_tag<E>, const boost::json::value&) beside it");
}

}  // namespace detail

/**
 * An event type with a payload: a struct with `static constexpr std::string_view name` (the
 * event's name) that converts to and from JSON (`boost::json::value_from`/`value_to`, e.g. through
 * `tag_invoke`), so it can travel in an `event`'s `data`:
 * ```cpp
 * struct order_placed { static constexpr std::string_view name = "ORDER.PLACED"; int id; double amount; };
 * ```
 */
template <class E>
concept typed_event = detail::named_event<E> && detail::json_convertible<E>;

/// The `event` for `e`: name `E::name`, data `value_from(e)`.
template <detail::named_event E>
event make_event(const E& e) {
  detail::check_event_type<E>();
  return event(std::string(std::string_view(E::name)), boost::json::value_from(e));
}

/// The payload of `ev` as an `E`; throws `std::invalid_argument` when `ev` is not named `E::name`
/// and `boost::system::system_error` when its data does not convert (inside an action or guard,
/// either puts the session in status `error` with the message).
template <detail::named_event E>
E payload(const event& ev) {
  detail::check_event_type<E>();
  if (ev.name != std::string_view(E::name))
    throw std::invalid_argument("event '" + ev.name + "' is not '" + std::string(std::string_view(E::name)) + "'");
  return boost::json::value_to<E>(ev.data);
}

/// Queues the typed event `e` on `s` (`s.send(make_event(e))`).
template <detail::named_event E>
std::error_code send(session& s, const E& e) {
  return s.send(make_event(e));
}

namespace detail {

template <class... A>
struct type_list {};

/// Parameter list of a callable with one non-template call operator (or a function pointer).
template <class F>
struct fn_traits {};
template <class F>
  requires requires { &F::operator(); }
struct fn_traits<F> : fn_traits<decltype(&F::operator())> {};
template <class R, class... A>
struct fn_traits<R (*)(A...)> { using ret = R; using args = type_list<A...>; };
template <class R, class... A>
struct fn_traits<R (*)(A...) noexcept> : fn_traits<R (*)(A...)> {};
template <class R, class C, class... A>
struct fn_traits<R (C::*)(A...)> : fn_traits<R (*)(A...)> {};
template <class R, class C, class... A>
struct fn_traits<R (C::*)(A...) const> : fn_traits<R (*)(A...)> {};
template <class R, class C, class... A>
struct fn_traits<R (C::*)(A...) noexcept> : fn_traits<R (*)(A...)> {};
template <class R, class C, class... A>
struct fn_traits<R (C::*)(A...) const noexcept> : fn_traits<R (*)(A...)> {};

template <class F>
concept has_signature = requires { typename fn_traits<std::decay_t<F>>::args; };

/// True for the parameter types that cannot be the context: the event, the scope, a typed event.
template <class A>
inline constexpr bool is_non_context_arg = std::same_as<std::remove_cvref_t<A>, event> ||
                                           std::same_as<std::remove_cvref_t<A>, action_scope> ||
                                           named_event<std::remove_cvref_t<A>>;

/// True for the parameter types an inline callable may take after the context.
template <class A>
inline constexpr bool is_extra_arg = is_non_context_arg<A> || std::same_as<std::remove_cvref_t<A>, value>;

/// The context type a callable's first parameter names (`void` when it takes none).
template <class L>
struct context_of_args { using type = void; };
template <class A0, class... A>
struct context_of_args<type_list<A0, A...>> {
  using type = std::conditional_t<is_non_context_arg<A0>, void, std::remove_cvref_t<A0>>;
};

/// The argument for a parameter of type `A` after the context: the event, the action scope, the
/// use site's `params` or the event's typed payload.
template <class A>
decltype(auto) extra_arg(const event& ev, const value& params, action_scope* scope) {
  using T = std::remove_cvref_t<A>;
  if constexpr (std::same_as<T, event>) {
    return (ev);
  } else if constexpr (std::same_as<T, action_scope>) {
    if (scope == nullptr) throw std::logic_error("only actions take an action_scope");
    return (*scope);
  } else if constexpr (std::same_as<T, value>) {
    return (params);
  } else {
    return payload<T>(ev);
  }
}

/// Calls `f` with its declared parameters: the context (when it takes one), then any of the event,
/// the action scope, `params` or a typed payload, in the order it declares them.
template <class F, class Ctx, class... Rest>
decltype(auto) call_with(F& f, void* ctx, const event& ev, const value& params, action_scope* scope, type_list<Ctx, Rest...>) {
  static_assert((is_extra_arg<Rest> && ...),
                "after the context, an inline callable may take only const event&, action_scope&, "
                "const value& (params) or a typed event");
  (void)ev, (void)params, (void)scope;  // unused when the callable takes the context only
  if constexpr (is_non_context_arg<Ctx>) {
    (void)ctx;
    return f(extra_arg<Ctx>(ev, params, scope), extra_arg<Rest>(ev, params, scope)...);
  } else {
    using C = std::remove_cvref_t<Ctx>;
    return f(*static_cast<C*>(ctx), extra_arg<Rest>(ev, params, scope)...);
  }
}
template <class F>
decltype(auto) call_with(F& f, void*, const event&, const value&, action_scope*, type_list<>) {
  return f();
}

/// An inline action, guard or delay with its context type erased (checked when a machine binds it).
template <class Fn>
struct erased {
  const std::type_info* context = nullptr;  ///< The context type it takes; null: any (takes none).
  std::string context_name;                 ///< For error messages.
  Fn fn;
};

template <class F, class Fn>
erased<Fn> make_erased(Fn fn) {
  using C = typename context_of_args<typename fn_traits<std::decay_t<F>>::args>::type;
  erased<Fn> e;
  if constexpr (!std::is_void_v<C>) {
    e.context = &typeid(C);
    e.context_name = typeid(C).name();
  }
  e.fn = std::move(fn);
  return e;
}

}  // namespace detail

/// An inline or named-bound action with its context type erased.
using erased_action = detail::erased<typed_action_fn>;
/// An inline or named-bound guard with its context type erased.
using erased_guard = detail::erased<typed_guard_fn>;
/// An inline or named-bound delay with its context type erased.
using erased_delay = detail::erased<typed_delay_fn>;

/**
 * Wraps a callable as an action. It takes, in this order, optionally the context (`Ctx&`, or
 * `value&` for a JSON context), then any of `const event&`, `action_scope&`, `const value&` (the
 * use site's `params`) or a typed event (its payload, converted from the event's data). A first
 * parameter that is the event, the scope or a typed event means "no context". Its call operator
 * must not be a template (the parameter types are read from it).
 */
template <class F>
  requires detail::has_signature<F>
erased_action make_action(F f) {
  using args = typename detail::fn_traits<std::decay_t<F>>::args;
  return detail::make_erased<F>(typed_action_fn([f = std::move(f)](void* ctx, const event& ev, const value& p, action_scope& s) mutable {
    detail::call_with(f, ctx, ev, p, &s, args{});
  }));
}

/// Wraps a predicate as a guard: optionally the context (`const Ctx&`), then any of
/// `const event&`, `const value&` (params) or a typed event.
template <class F>
  requires detail::has_signature<F>
erased_guard make_guard(F f) {
  using args = typename detail::fn_traits<std::decay_t<F>>::args;
  return detail::make_erased<F>(typed_guard_fn([f = std::move(f)](const void* ctx, const event& ev, const value& p) mutable -> bool {
    return static_cast<bool>(detail::call_with(f, const_cast<void*>(ctx), ev, p, nullptr, args{}));
  }));
}

/// Wraps a function returning a `std::chrono::duration` as a named delay: optionally the context
/// (`const Ctx&`), then any of `const event&` or a typed event (the event that entered the state).
template <class F>
  requires detail::has_signature<F>
erased_delay make_delay(F f) {
  using args = typename detail::fn_traits<std::decay_t<F>>::args;
  return detail::make_erased<F>(typed_delay_fn([f = std::move(f)](const void* ctx, const event& ev) mutable {
    static const value no_params;
    return std::chrono::duration_cast<std::chrono::milliseconds>(detail::call_with(f, const_cast<void*>(ctx), ev, no_params, nullptr, args{}));
  }));
}

namespace detail {

/// Name -> erased implementation tables of `typed_implementations`, without the context type.
struct typed_table {
  std::unordered_map<std::string, erased_action> actions;
  std::unordered_map<std::string, erased_guard> guards;
  std::unordered_map<std::string, erased_delay> delays;
};

/// Resolves the names `chart` uses through `table`, checking each callable's context type
/// against `context`, and makes the bound slots; `make_context` null binds a JSON context, whose
/// names may also come from `untyped`. Actor logic comes from `untyped` in both cases.
result<std::shared_ptr<const bound_implementations>> bind_erased(const statechart& chart, const typed_table& table,
                                                                 const std::type_info& context,
                                                                 std::function<std::unique_ptr<context_holder>()> make_context,
                                                                 const implementations* untyped = nullptr);

/// A `context_holder` for `Ctx`.
template <class Ctx>
class holder final : public context_holder {
 public:
  explicit holder(Ctx c) : c_(std::move(c)) {}
  void* get() noexcept override { return &c_; }
  const std::type_info& type() const noexcept override { return typeid(Ctx); }
  value save() const override { return boost::json::value_from(c_); }
  result<void> restore(const value& saved) override {
    try {
      c_ = boost::json::value_to<Ctx>(saved);
    } catch (const std::exception& e) {
      return eval_error{std::string("the context does not convert to its C++ type: ") + e.what()};
    }
    return {};
  }

 private:
  Ctx c_;
};

}  // namespace detail

/// A context type usable by typed machines: copyable and convertible to and from JSON.
template <class Ctx>
concept typed_context = std::copy_constructible<Ctx> && detail::json_convertible<Ctx>;

namespace detail {
/// Fails the build at the use of `Ctx` with a readable message when it is no `typed_context`.
template <class Ctx>
constexpr void check_context_type() {
  static_assert(std::copy_constructible<Ctx>, "xsn::typed: the context type must be copy-constructible");
  static_assert(json_convertible<Ctx>,
                "xsn::typed: Context must be convertible to JSON (for snapshots): define "
                "tag_invoke(boost::json::value_from_tag, boost::json::value&, const Context&) and "
                "tag_invoke(boost::json::value_to_tag<Context>, const boost::json::value&) beside it");
}
}  // namespace detail

/**
 * Named actions, guards and delays on a context of C++ type `Ctx` (XState's `setup()` with a
 * typed context). Callables take `Ctx&` (actions) or `const Ctx&` (guards, delays) first; see
 * `make_action` for what may follow. With `Ctx = value` the context is JSON.
 */
template <class Ctx>
class typed_implementations {
  static_assert((detail::check_context_type<Ctx>(), true));

 public:
  /// Binds action `name` to `f`.
  template <class F>
  typed_implementations& action(std::string name, F f) {
    table_.actions.insert_or_assign(std::move(name), make_action(std::move(f)));
    return *this;
  }
  /// Binds guard `name` to `f`.
  template <class F>
  typed_implementations& guard(std::string name, F f) {
    table_.guards.insert_or_assign(std::move(name), make_guard(std::move(f)));
    return *this;
  }
  /// Binds delay `name` to `f` (returning a duration).
  template <class F>
  typed_implementations& delay(std::string name, F f) {
    table_.delays.insert_or_assign(std::move(name), make_delay(std::move(f)));
    return *this;
  }
  /// Binds delay `name` to a fixed duration.
  typed_implementations& delay(std::string name, std::chrono::milliseconds ms) {
    return delay(std::move(name), [ms] { return ms; });
  }
  /// Binds actor logic `name` (an invoke's or spawnChild's `src`; see `<xsn/runtime/actors.hpp>`).
  /// Actor logic does not see the context: it takes the invoke's input.
  template <class Logic>  // (a template: `actor_logic` is complete only where it is used)
    requires std::same_as<Logic, actor_logic>
  typed_implementations& actor(std::string name, Logic logic) {
    actors_.actor(std::move(name), std::move(logic));
    return *this;
  }
  /// Adds or replaces the implementations of `other` (XState's `provide`).
  typed_implementations& provide(const typed_implementations& other) {
    for (const auto& [k, v] : other.table_.actions) table_.actions.insert_or_assign(k, v);
    for (const auto& [k, v] : other.table_.guards) table_.guards.insert_or_assign(k, v);
    for (const auto& [k, v] : other.table_.delays) table_.delays.insert_or_assign(k, v);
    actors_.provide(other.actors_);
    return *this;
  }
  /// The erased tables (for `bind` and the builder).
  const detail::typed_table& table() const noexcept { return table_; }
  /// The actor logic (for `bind` and the builder).
  const implementations& actors() const noexcept { return actors_; }

 private:
  detail::typed_table table_;
  implementations actors_;
};

/// Binds the names `chart` uses to `impl`, once, with `initial` as every session's starting
/// context (held natively; JSON only in snapshots). Fails naming every name not provided and every
/// callable taking another context type, all at once (see the untyped `bind`).
template <class Ctx>
result<std::shared_ptr<const bound_implementations>> bind(const statechart& chart, const typed_implementations<Ctx>& impl,
                                                          Ctx initial) {
  detail::check_context_type<Ctx>();
  return detail::bind_erased(
      chart, impl.table(), typeid(Ctx),
      [initial = std::move(initial)]() -> std::unique_ptr<context_holder> { return std::make_unique<detail::holder<Ctx>>(initial); },
      &impl.actors());
}

/// The typed context of `s` (a session of a chart bound with a typed context of type `Ctx`), or
/// null when its context is of another type or JSON.
template <class Ctx>
Ctx* context_of(session& s) noexcept {
  auto* h = xstate_typed_context(s.datamodel());
  return h != nullptr && h->type() == typeid(Ctx) ? static_cast<Ctx*>(h->get()) : nullptr;
}

}  // namespace xsn::inline v0
