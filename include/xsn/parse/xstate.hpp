#pragma once
/// \file XState v5 JSON machine configs to compiled statecharts, with located errors.
#include <xsn/core/value.hpp>
#include <xsn/model/statechart.hpp>
#include <xsn/model/xstate_program.hpp>
#include <xsn/parse/scxml.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace xsn::inline v0 {

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

}  // namespace xsn::inline v0
