#pragma once
// Private to xsn_core: the XState v5 rules where they differ from W3C SCXML (transition domains and
// `reenter`, entry sets, descriptor matching, transition selection). statechart.cpp and session.cpp
// call these only for charts with `semantics == chart_semantics::xstate`.
#include "model/state_set.hpp"

#include <xsn/model/statechart.hpp>

#include <functional>
#include <string_view>
#include <vector>

namespace xsn::inline v0::detail {

/// XState's matchesEventDescriptor: exact, `*`, or `x.*` (matching `x` and `x.anything`).
bool xstate_descriptor_matches(std::string_view desc, std::string_view name) noexcept;

/// Fills `c.name_prefixes` with, for each name, itself and the `P.*` descriptors that match it.
void xstate_name_prefixes(statechart& c);

/// XState's getTransitionDomain for `t` with effective targets `targets` (npos when targetless).
/// State 0 stands for "no domain" (a root transition with `reenter: true`).
state_index xstate_domain(const statechart& c, const transition_node& t, const std::vector<state_index>& targets);

/// Stored states of a history state: appends them to `out` and returns true, or returns false
/// when the history state has no stored value yet.
using history_lookup = std::function<bool(state_index history, std::vector<state_index>& out)>;

/// XState's computeEntrySet for one transition, adding to `entry`, and to `defaults` (when given)
/// the compound states entered by default, whose `initial` actions run (statesForDefaultEntry).
void xstate_entry_set(const statechart& c, const transition_node& t, state_index domain,
                      const std::vector<state_index>& effective_targets, const history_lookup& history,
                      state_set& entry, state_set* defaults = nullptr);

/// Sets `domain`, `static_entry` and `entry` of every transition of an XState chart.
void xstate_finalize_transitions(statechart& c);

}  // namespace xsn::inline v0::detail
