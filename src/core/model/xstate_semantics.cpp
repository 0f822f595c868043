// XState v5 semantics over the shared model: functions named after XState's own (getTransitionDomain,
// computeEntrySet, addDescendantStatesToEnter, addAncestorStatesToEnter, StateNode.next) so that the
// two can be read side by side (xstate/src/stateUtils.ts).
#include "model/xstate_semantics.hpp"

#include <algorithm>

namespace xsn::inline v0::detail {

bool xstate_descriptor_matches(std::string_view desc, std::string_view name) noexcept {
  if (desc == name || desc == "*") return true;
  if (desc.size() < 2 || desc.substr(desc.size() - 2) != ".*") return false;
  auto prefix = desc.substr(0, desc.size() - 2);
  if (prefix.find('*') != std::string_view::npos) return false;
  if (name.size() < prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return false;
  return name.size() == prefix.size() || name[prefix.size()] == '.';
}

void xstate_name_prefixes(statechart& c) {
  c.name_prefixes.assign(c.names.size(), {});
  std::string probe;
  for (std::uint32_t n = 0; n < c.names.size(); ++n) {
    auto& out = c.name_prefixes[n];
    out.push_back(n);
    std::string_view full = c.names[n];
    for (std::size_t end = 0; end != std::string_view::npos;) {
      end = full.find('.', end + 1);
      probe.assign(full.substr(0, end));
      probe += ".*";
      auto d = c.find_name(probe);
      if (d != npos && d != n && xstate_descriptor_matches(c.names[d], full)) out.push_back(d);
    }
  }
}

state_index xstate_domain(const statechart& c, const transition_node& t, const std::vector<state_index>& targets) {
  if (targets.empty()) return npos;
  const auto src = t.source;
  if (!t.reenter && std::all_of(targets.begin(), targets.end(), [&](state_index s) { return s == src || c.is_descendant(s, src); }))
    return src;
  for (auto anc = c.states[src].parent; anc != npos; anc = c.states[anc].parent)
    if (std::all_of(targets.begin(), targets.end(), [&](state_index s) { return c.is_descendant(s, anc); })) return anc;
  return 0;
}

namespace {

class entry_builder {
 public:
  entry_builder(const statechart& c, const history_lookup& h, state_set& entry, state_set* defaults)
      : c_(c), history_(h), entry_(entry), defaults_(defaults) {}

  void transition(const transition_node& t, state_index domain, const std::vector<state_index>& effective) {
    for (auto s : t.targets) {
      if (enters_target(t, s, domain)) add(s), by_default(s);
      descendants(s);
    }
    // A root transition with `reenter` re-enters every ancestor (XState: no reentrancy domain).
    const state_index reentrancy = t.source == 1 && t.reenter ? npos : domain;
    for (auto s : effective) add_ancestors(ancestors_in_domain(s, domain), reentrancy);
  }

 private:
  void add(state_index s) {
    if (s != 0) entry_.set(s);
  }
  // XState's statesForDefaultEntry: states whose `initial` actions run when they are entered.
  void by_default(state_index s) {
    if (defaults_ && s != 0 && c_.states[s].kind == state_kind::compound && c_.states[s].initial != npos) defaults_->set(s);
  }
  bool has_descendant(state_index s) const { return entry_.any_in(s + 1, c_.states[s].subtree_end); }
  // True when target `s` of `t` is itself entered: not a history state, and not the source of
  // a transition that stays inside it.
  bool enters_target(const transition_node& t, state_index s, state_index domain) const {
    const auto src = t.source;
    return c_.states[s].kind != state_kind::history && (s != src || domain != src || t.reenter);
  }
  // The ancestors of effective target `s` entered with it: those below `domain` (and above the
  // root), then `domain` itself when it is parallel.
  std::vector<state_index> ancestors_in_domain(state_index s, state_index domain) const {
    std::vector<state_index> ancestors;
    if (s != domain)  // getProperAncestors(s, s) is empty
      for (auto a = c_.states[s].parent; a != npos && a != domain && a != 0; a = c_.states[a].parent) ancestors.push_back(a);
    if (domain != npos && c_.states[domain].kind == state_kind::parallel) ancestors.push_back(domain);
    return ancestors;
  }
  void descendants(state_index s) {
    const auto& st = c_.states[s];
    if (st.kind == state_kind::history) return history_descendants(s);
    if (st.kind == state_kind::compound && st.initial != npos) return initial_descendants(s);
    if (st.kind == state_kind::parallel) parallel_descendants(s);
  }
  // History state `s`: the stored states, else the targets of its default transition.
  // The loaders refuse a history default that enters its own history state; the guard bounds the
  // recursion for any chart built another way.
  void history_descendants(state_index s) {
    if (std::find(expanding_.begin(), expanding_.end(), s) != expanding_.end()) return;
    expanding_.push_back(s);
    expand_history(s);
    expanding_.pop_back();
  }
  void expand_history(state_index s) {
    const auto& st = c_.states[s];
    std::vector<state_index> stored;
    if (!history_(s, stored)) {
      if (st.initial == npos) return;
      stored = c_.transitions[st.initial].targets;
      // The loader gives a history state without target a copy of the parent's initial
      // transition, with the parent as its source.
      if (c_.transitions[st.initial].source == st.parent) by_default(st.parent);
    }
    for (auto x : stored) {
      add(x);
      descendants(x);
    }
    for (auto x : stored) proper_ancestors(x, st.parent);
  }
  // Compound state `s` with an initial transition: its first target and what lies between.
  void initial_descendants(state_index s) {
    const auto& targets = c_.transitions[c_.states[s].initial].targets;
    if (targets.empty()) return;
    auto init = targets.front();
    if (c_.states[init].kind != state_kind::history) add(init), by_default(init);
    descendants(init);
    proper_ancestors(init, s);
  }
  // Parallel state `s`: every region not entered yet.
  void parallel_descendants(state_index s) {
    for (auto ch : c_.states[s].children)
      if (!has_descendant(ch)) {
        add(ch);
        by_default(ch);
        descendants(ch);
      }
  }
  void proper_ancestors(state_index s, state_index to) {
    std::vector<state_index> ancestors;
    for (auto a = c_.states[s].parent; a != npos && a != to && a != 0; a = c_.states[a].parent) ancestors.push_back(a);
    add_ancestors(ancestors, npos);
  }
  void add_ancestors(const std::vector<state_index>& ancestors, state_index reentrancy) {
    for (auto anc : ancestors) {
      if (reentrancy == npos || c_.is_descendant(anc, reentrancy)) add(anc);
      if (c_.states[anc].kind == state_kind::parallel)
        for (auto ch : c_.states[anc].children)
          if (!has_descendant(ch)) {
            add(ch);
            descendants(ch);
          }
    }
  }

  const statechart& c_;
  const history_lookup& history_;
  state_set& entry_;
  state_set* defaults_;
  std::vector<state_index> expanding_;  // the history states being expanded, innermost last
};

}  // namespace

void xstate_entry_set(const statechart& c, const transition_node& t, state_index domain,
                      const std::vector<state_index>& effective_targets, const history_lookup& history, state_set& entry,
                      state_set* defaults) {
  entry_builder(c, history, entry, defaults).transition(t, domain, effective_targets);
}

void xstate_finalize_transitions(statechart& c) {
  state_set entry(c.states.size()), defaults(c.states.size());
  bool used_history = false;
  history_lookup none = [&](state_index, std::vector<state_index>&) {
    used_history = true;
    return false;
  };
  for (auto& t : c.transitions) {
    t.domain = npos;
    t.static_entry = false;
    t.entry.clear();
    if (t.targets.empty() || t.history_target || t.source == npos) continue;
    t.domain = xstate_domain(c, t, t.targets);
    entry.clear();
    defaults.clear();
    used_history = false;
    xstate_entry_set(c, t, t.domain, t.targets, none, entry, &defaults);
    if (used_history) continue;
    t.static_entry = true;
    entry.for_each([&](state_index s) { t.entry.emplace_back(s, defaults.test(s)); });
  }
}

}  // namespace xsn::inline v0::detail
