#pragma once
// Private to xsn_core: the XState v5 rules where they differ from W3C SCXML (transition domains and
// `reenter`, entry sets, descriptor matching, transition selection). statechart.cpp and session.cpp
// call these only for charts with `semantics == chart_semantics::xstate`.
#include <xsn/detail/bitset.hpp>
#include <xsn/model/statechart.hpp>

#include <functional>
#include <string_view>
#include <vector>

namespace xsn::detail {

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

/// XState's computeEntrySet for one transition, adding to `entry`.
void xstate_entry_set(const statechart& c, const transition_node& t, state_index domain,
                      const std::vector<state_index>& effective_targets, const history_lookup& history,
                      bitset& entry);

/// Sets `domain`, `static_entry` and `entry` of every transition of an XState chart.
void xstate_finalize_transitions(statechart& c);

/// XState's transition selection for an event (StateNode.next over the active tree): calls
/// `pick(t)` on the candidates of a state in XState's order until it returns true; a compound
/// state is asked only when its active child found nothing, a parallel one when no region did.
template <class Pick>
bool xstate_select_in(const statechart& c, const bitset& config, std::string_view name, std::uint32_t name_id,
                      Pick& pick, state_index s) {
  const auto& st = c.states[s];
  if (st.kind == state_kind::compound) {
    for (auto ch : st.children)
      if (config.test(ch)) {
        if (xstate_select_in(c, config, name, name_id, pick, ch)) return true;
        break;
      }
  } else if (st.kind == state_kind::parallel) {
    bool any = false;
    for (auto ch : st.children) any = xstate_select_in(c, config, name, name_id, pick, ch) || any;
    if (any) return true;
  }
  const auto& hs = c.hot_states[s];
  for (auto ti = hs.first_transition, last = hs.first_transition + hs.transition_count; ti != last; ++ti) {
    const auto ev = c.hot_transitions[ti].event;
    if (ev != name_id) {
      if (ev == hot_transition::eventless_marker || !c.matches_slow(c.transitions[ti], name, name_id)) continue;
    }
    if (pick(ti)) return true;
  }
  return false;
}

/// `xstate_select_in` from the machine's root.
template <class Pick>
void xstate_select(const statechart& c, const bitset& config, std::string_view name, std::uint32_t name_id, Pick&& pick) {
  if (c.states.size() > 1) xstate_select_in(c, config, name, name_id, pick, 1);
}

}  // namespace xsn::detail
