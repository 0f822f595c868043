#pragma once
/// \file XState v5 JSON machine configs to compiled statecharts, with located errors.
#include <xsn/model/statechart.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/runtime/value.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace xsn {

/**
 * What an XState chart names and the interpreter cannot know by itself: guards (with their
 * `and`/`or`/`not`/`stateIn` combinators compiled to a tree), action uses with their `params`,
 * named delays and the initial `context`. Sessions evaluate these through the `xstate` datamodel
 * (see `<xsn/runtime/implementations.hpp>`), by the expression index the model stores.
 */
struct xstate_program {
  /// What an expression of the chart stands for.
  enum class expr_kind : std::uint8_t { guard, action, delay, output, actor_action };
  /// One expression: its kind and the index in `guards`, `actions`, `delays` or `outputs`.
  struct expr_ref {
    expr_kind kind = expr_kind::guard;
    std::uint32_t index = 0;
  };
  /// A node of a guard tree.
  struct guard_node {
    enum class op : std::uint8_t { call, all, any, negate, state_in };
    op kind = op::call;
    std::uint32_t name = npos;           ///< `call`: index in `guard_names`.
    value params;                        ///< `call`: the guard's `params` (null when none).
    std::vector<std::uint32_t> children; ///< `all`/`any`/`negate`: indices in `guards`.
    std::vector<state_index> states;     ///< `state_in`: every one must be active.
  };
  /// One use of a named action (an entry in `entry`, `exit` or `actions`).
  struct action_site {
    std::uint32_t name = npos;  ///< Index in `action_names`.
    value params;               ///< `params` (null when none).
  };

  /// An actor started by an `invoke` or a `spawnChild` action.
  struct actor_site {
    std::uint32_t src = npos;  ///< Index in `actor_names`.
    std::string id;            ///< The child's id (an invoke's default: `<index>.<stateId>`).
    std::string system_id;     ///< `systemId` (empty when none).
    value input;               ///< `input` (null when none).
  };
  /// A built-in actor action: `sendTo`, `sendParent`, `forwardTo`, `stopChild`, `spawnChild`.
  struct actor_action {
    enum class op : std::uint8_t { send_to, send_parent, forward_to, stop_child, spawn_child };
    op kind = op::send_to;
    std::string to;              ///< `sendTo`/`forwardTo`: the target; `stopChild`: the child id.
    std::string event;           ///< `sendTo`/`sendParent`: the event's `type`.
    value data;                  ///< The event's other keys (null when none).
    std::uint32_t site = npos;   ///< `spawnChild`: index in `spawns`.
  };

  value context;                          ///< The machine's initial `context` (null when none).
  value output;                           ///< The machine's `output` (null when none).
  std::vector<std::string> guard_names;   ///< Named guards, slot order.
  std::vector<std::string> action_names;  ///< Named actions, slot order.
  std::vector<std::string> delay_names;   ///< Named delays (non-numeric `after` keys), slot order.
  std::vector<guard_node> guards;         ///< Guard tree nodes.
  std::vector<action_site> actions;       ///< Action uses.
  std::vector<value> outputs;             ///< Static `output` of final states.
  std::vector<std::string> actor_names;   ///< Actor logic names (`src`), slot order.
  std::vector<actor_site> invokes;        ///< Parallel to `statechart::invokes`.
  std::vector<actor_site> spawns;         ///< `spawnChild` uses.
  std::vector<actor_action> actor_actions;  ///< Built-in actor actions.
  std::vector<expr_ref> exprs;            ///< Parallel to `statechart::expressions`.
  std::vector<value> meta;                ///< `meta` of each state (null when none), by state index.
};

/**
 * Parses an XState v5 machine config (JSON) into a chart with `semantics == chart_semantics::xstate`.
 *
 * State 0 of the result stands above the machine's root node (state 1), so that a root
 * transition with `reenter: true` exits and re-enters the root as XState does. State ids are
 * XState's (`machineId.a.b` unless `id` is given; the machine id defaults to `(machine)`), and
 * `state_node::key` is the key used in state values.
 *
 * Guards are a name (`"isReady"`), `{"type": name, "params": {...}}`, or a combinator:
 * `{"type": "and"|"or", "guards": [g, ...]}`, `{"type": "not", "guard": g}` (also
 * `"guards": [g]`; `xstate.and`/`xstate.or`/`xstate.not` are accepted too) and
 * `{"type": "stateIn", "state": "#id" | "a.b" | {"a": "b"}}` (also `"stateValue"`).
 * Actions are a name or `{"type": name, "params": {...}}`; the types `sendTo`, `sendParent`,
 * `forwardTo`, `stopChild` and `spawnChild` are built in (see docs/components.md, "Actors").
 * `invoke` (an object or an array) takes `src` (an actor name), `id`, `systemId`, `input`,
 * `onDone` and `onError`.
 * Errors carry `line:col` of the offending value and its JSON pointer.
 */
parse_result parse_xstate(std::string_view text, std::string_view source_name);

/// How deep the JSON of an XState machine config may nest: two levels per state (`states`, then
/// the state's key) for `max_state_depth` nested states, and room for what a state holds.
/// Deeper text is an `invalid JSON` error at the offending value. States nested deeper than
/// `max_state_depth` (the machine's own states at depth 1) are an error at the state.
inline constexpr std::size_t max_xstate_json_depth = 2 * max_state_depth + 64;

/// Reads and parses the XState machine config at `path`.
parse_result load_xstate(const std::filesystem::path& path);

/**
 * The XState state value of a configuration (`active(s)` tells whether state `s` is active):
 * a compound state with an atomic active child is its key, otherwise `{key: value}`; a parallel
 * state maps each region. For SCXML charts the keys are the state ids and the root is state 0.
 */
template <class Active>
value state_value_of(const statechart& c, Active&& active);

namespace detail {
value state_value_at(const statechart& c, state_index s, const void* ctx, bool (*active)(const void*, state_index));
}

template <class Active>
value state_value_of(const statechart& c, Active&& active) {
  auto thunk = [](const void* ctx, state_index s) { return (*static_cast<const std::remove_reference_t<Active>*>(ctx))(s); };
  return detail::state_value_at(c, c.semantics == chart_semantics::xstate && c.states.size() > 1 ? 1 : 0, &active, thunk);
}

}  // namespace xsn
