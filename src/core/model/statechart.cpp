#include <xsn/model/statechart.hpp>

#include "model/xstate_semantics.hpp"

#include <algorithm>

namespace xsn::inline v0 {

bool descriptor_matches(std::string_view desc, std::string_view name) noexcept {
  if (desc == "*") return true;
  if (name.size() < desc.size() || name.compare(0, desc.size(), desc) != 0) return false;
  return name.size() == desc.size() || name[desc.size()] == '.';
}

state_index statechart::find_state(std::string_view id) const noexcept {
  auto it = state_ids_.find(id);
  return it == state_ids_.end() ? npos : it->second;
}

std::uint32_t statechart::find_name(std::string_view n) const noexcept {
  auto it = name_ids_.find(n);
  return it == name_ids_.end() ? npos : it->second;
}

bool statechart::matches_slow(const transition_node& t, std::string_view name,
                         std::uint32_t name_id) const noexcept {
  if (t.any_event) return true;
  if (name_id != npos) {
    const auto& prefixes = name_prefixes[name_id];
    for (auto d : t.events) {
      for (auto p : prefixes)
        if (p == d) return true;
    }
    return false;
  }
  for (auto d : t.events)
    if (semantics == chart_semantics::xstate ? detail::xstate_descriptor_matches(names[d], name)
                                             : descriptor_matches(names[d], name))
      return true;
  return false;
}

std::pair<const indexed_transition*, const indexed_transition*> statechart::indexed(state_index s,
                                                                                 std::uint32_t key) const noexcept {
  const auto* first = event_index.data() + event_index_offsets[key];
  const auto* last = event_index.data() + event_index_offsets[key + 1];
  if (first == last) return {first, last};
  const auto by_source = [](const indexed_transition& e, state_index v) { return e.source < v; };
  first = std::lower_bound(first, last, s, by_source);
  auto end = first;
  while (end != last && end->source == s) ++end;
  return {first, end};
}

void statechart::descriptor_keys(std::string_view name, std::uint32_t name_id, std::vector<std::uint32_t>& out) const {
  if (name_id != npos) {
    out.insert(out.end(), name_prefixes[name_id].begin(), name_prefixes[name_id].end());
    return;
  }
  // A name no descriptor names: SCXML matches it by the descriptors that are token prefixes of it,
  // XState by the `P.*` descriptors whose P is one (or the whole name).
  std::string probe;
  for (std::size_t end = 0; end != std::string_view::npos;) {
    end = name.find('.', end + 1);
    std::uint32_t d = npos;
    if (semantics == chart_semantics::xstate) {
      probe.assign(name.substr(0, end));
      probe += ".*";
      d = find_name(probe);
      if (d != npos && !detail::xstate_descriptor_matches(names[d], name)) d = npos;
    } else if (end != std::string_view::npos) {
      d = find_name(name.substr(0, end));
    }
    if (d != npos) out.push_back(d);
  }
}

namespace {

/// The least common compound ancestor of `first` and `rest` (W3C findLCCA). Walks up only as far
/// as the answer: the ancestors of a deeply nested source are not listed for each transition.
state_index find_lcca(const statechart& c, state_index first, const std::vector<state_index>& rest) {
  for (auto anc = c.states[first].parent; anc != npos; anc = c.states[anc].parent) {
    auto k = c.states[anc].kind;
    if (anc != 0 && k != state_kind::compound) continue;
    if (std::all_of(rest.begin(), rest.end(), [&](state_index s) { return c.is_descendant(s, anc); }))
      return anc;
  }
  return 0;
}

void resolve_names(const statechart& c, action_block& block) {
  for (auto& a : block) {
    if (auto* r = std::get_if<raise_action>(&a.op)) r->name_id = c.find_name(r->event);
    else if (auto* s = std::get_if<send_action>(&a.op)) s->name_id = c.find_name(s->event);
    else if (auto* i = std::get_if<if_action>(&a.op))
      for (auto& b : i->branches) resolve_names(c, b.body);
    else if (auto* f = std::get_if<foreach_action>(&a.op)) resolve_names(c, f->body);
  }
}

/// Entry sets larger than this are not precomputed: the interpreter computes them when the
/// transition is taken. Keeps `finalize` linear in the chart (the default entry of a chain of N
/// nested states has N states, so precomputing each link's would cost N*N time and memory).
constexpr std::size_t max_static_entry = 64;

/// Computes a transition's entry set at build time (W3C computeEntrySet without history).
class static_entry_builder {
 public:
  explicit static_entry_builder(const statechart& c) : c_(c), in_(c.states.size(), 0), def_(c.states.size(), 0) {}
  bool build(transition_node& t) {
    ok_ = true;
    for (auto s : t.targets) add_descendants(s);
    for (auto s : t.targets) add_ancestors(s, t.domain);
    std::sort(touched_.begin(), touched_.end());
    t.entry.clear();
    for (auto s : touched_) {
      if (ok_) t.entry.emplace_back(s, def_[s] != 0);
      in_[s] = def_[s] = 0;
    }
    touched_.clear();
    if (!ok_) t.entry.clear();
    return ok_;
  }

 private:
  /// True when a state of `s`'s subtree is marked: looks at the marked ones (at most
  /// `max_static_entry + 1`), not at the whole subtree.
  bool any_in(state_index s) const {
    const auto end = c_.states[s].subtree_end;
    return std::any_of(touched_.begin(), touched_.end(), [&](state_index t) { return t >= s && t < end; });
  }
  void mark(state_index s) {
    if (!in_[s]) touched_.push_back(s);
    in_[s] = 1;
    if (touched_.size() > max_static_entry) ok_ = false;
  }
  void add_descendants(state_index s) {
    const auto& st = c_.states[s];
    if (st.kind == state_kind::history || !ok_) {
      ok_ = false;
      return;
    }
    mark(s);
    if (st.kind == state_kind::compound) {
      def_[s] = 1;
      const auto& init = c_.transitions[st.initial];
      for (auto t : init.targets) add_descendants(t);
      for (auto t : init.targets) add_ancestors(t, s);
    } else if (st.kind == state_kind::parallel) {
      for (auto ch : st.children)
        if (!any_in(ch)) add_descendants(ch);
    }
  }
  void add_ancestors(state_index s, state_index anc) {
    for (auto a = c_.states[s].parent; ok_ && a != npos && a != anc && a != 0; a = c_.states[a].parent) {
      mark(a);
      if (c_.states[a].kind == state_kind::parallel)
        for (auto ch : c_.states[a].children)
          if (!any_in(ch)) add_descendants(ch);
    }
  }
  const statechart& c_;
  std::vector<char> in_, def_;
  std::vector<state_index> touched_;
  bool ok_ = true;
};

/// Renumbers transitions so that each state's outgoing transitions are contiguous, in document
/// order, followed by the synthetic default-entry transitions.
void group_transitions_by_source(statechart& c) {
  std::vector<transition_index> order;
  order.reserve(c.transitions.size());
  for (const auto& s : c.states) order.insert(order.end(), s.transitions.begin(), s.transitions.end());
  for (const auto& s : c.states)
    if (s.initial != npos) order.push_back(s.initial);
  std::vector<transition_index> new_index(c.transitions.size(), npos);
  for (transition_index i = 0; i < order.size(); ++i) new_index[order[i]] = i;
  for (transition_index i = 0; i < c.transitions.size(); ++i)
    if (new_index[i] == npos) {
      new_index[i] = static_cast<transition_index>(order.size());
      order.push_back(i);
    }
  std::vector<transition_node> moved;
  moved.reserve(c.transitions.size());
  for (auto i : order) moved.push_back(std::move(c.transitions[i]));
  c.transitions = std::move(moved);
  for (auto& s : c.states) {
    for (auto& t : s.transitions) t = new_index[t];
    if (s.initial != npos) s.initial = new_index[s.initial];
  }
}

/// For each name, the token prefixes of it that are names (itself included).
void build_name_prefixes(statechart& c) {
  c.name_prefixes.assign(c.names.size(), {});
  for (std::uint32_t n = 0; n < c.names.size(); ++n) {
    std::string_view full = c.names[n];
    for (std::size_t end = 0; end != std::string_view::npos;) {
      end = full.find('.', end + 1);
      auto d = c.find_name(full.substr(0, end));
      if (d != npos) c.name_prefixes[n].push_back(d);
    }
  }
}

/// Each state's done event, and the names in its entry and exit actions.
void resolve_state_names(statechart& c) {
  for (auto& s : c.states) {
    s.done_event = (c.semantics == chart_semantics::xstate ? "xstate.done.state." : "done.state.") + s.id;
    s.done_name_id = c.find_name(s.done_event);
    for (auto& b : s.onentry) resolve_names(c, b);
    for (auto& b : s.onexit) resolve_names(c, b);
  }
}

/// `eventless_in_chain` of each state (parents come first) and `has_eventless`.
void mark_eventless(statechart& c) {
  c.has_eventless = false;
  for (auto& s : c.states) {
    s.eventless_in_chain = s.parent != npos && c.states[s.parent].eventless_in_chain;
    for (auto t : s.transitions) s.eventless_in_chain |= c.transitions[t].eventless();
    c.has_eventless |= s.eventless_in_chain;
  }
}

/// The precomputed domain of `t` (SCXML rules), or npos: targetless, to a history state, without
/// a source, or an XState chart (whose rules set it later).
state_index precomputed_domain(const statechart& c, const transition_node& t) {
  if (t.targets.empty() || t.history_target || t.source == npos || c.semantics == chart_semantics::xstate) return npos;
  const auto src = t.source;
  bool all_inside =
      std::all_of(t.targets.begin(), t.targets.end(), [&](state_index s) { return c.is_descendant(s, src); });
  if (t.internal && c.states[src].kind == state_kind::compound && all_inside) return src;
  return find_lcca(c, src, t.targets);
}

/// `hot_state` flags of state `i` for what it runs: entry and exit actions, invokes, data,
/// eventless transitions in its chain, a body on its initial transition.
std::uint32_t content_flags(const statechart& c, state_index i) {
  const auto& s = c.states[i];
  std::uint32_t f = 0;
  if (!s.onentry.empty()) f |= hot_state::onentry;
  if (!s.onexit.empty()) f |= hot_state::onexit;
  if (!s.invokes.empty()) f |= hot_state::invokes;
  if (!s.data.empty()) f |= hot_state::data;
  if (s.eventless_in_chain) f |= hot_state::eventless_in_chain;
  if (s.initial != npos && !c.transitions[s.initial].body.empty()) f |= hot_state::initial_body;
  const auto is_call = [](const action& a) {
    return std::holds_alternative<native_action>(a.op) || std::holds_alternative<script_action>(a.op);
  };
  if (std::all_of(s.onentry.begin(), s.onentry.end(), [&](const action_block& b) { return std::all_of(b.begin(), b.end(), is_call); }))
    f |= hot_state::entry_calls;
  return f;
}

/// `hot_state` flags of state `i` for its kind and place: final, compound, parallel, childless,
/// the last region of a parallel state.
std::uint32_t kind_flags(const statechart& c, state_index i) {
  const auto& s = c.states[i];
  std::uint32_t f = 0;
  if (s.kind == state_kind::final_state) f |= hot_state::final;
  if (s.kind == state_kind::compound) f |= hot_state::compound;
  if (s.kind == state_kind::parallel) f |= hot_state::parallel;
  if ((s.kind == state_kind::compound || s.kind == state_kind::parallel) && s.children.empty()) f |= hot_state::childless;
  if (s.parent != npos && c.states[s.parent].kind == state_kind::parallel && !c.states[s.parent].children.empty() &&
      c.states[s.parent].children.back() == i)
    f |= hot_state::last_region;
  return f;
}

/// `hot_state::indexed` (and `any_event`) when state `i` has more transitions than the threshold.
std::uint32_t index_flags(const statechart& c, state_index i) {
  const auto& s = c.states[i];
  if (s.transitions.size() <= statechart::index_threshold) return 0;
  std::uint32_t f = hot_state::indexed;
  for (auto t : s.transitions)
    if (c.transitions[t].any_event) f |= hot_state::any_event;
  return f;
}

hot_state hot_state_of(const statechart& c, state_index i) {
  const auto& s = c.states[i];
  hot_state h;
  h.parent = s.parent;
  h.subtree_end = s.subtree_end;
  h.first_transition = s.transitions.empty() ? 0 : s.transitions.front();
  h.transition_count = static_cast<std::uint32_t>(s.transitions.size());
  h.flags = content_flags(c, i) | kind_flags(c, i) | index_flags(c, i);
  return h;
}

/// The hot view of `t`; its static entry set is appended to `hot_entry`.
hot_transition hot_transition_of(const transition_node& t, std::vector<std::uint32_t>& hot_entry) {
  hot_transition h;
  h.event = t.eventless() ? hot_transition::eventless_marker
            : (t.any_event || t.events.size() != 1) ? hot_transition::multi_marker
                                                    : t.events.front();
  h.cond = t.cond;
  h.domain = t.history_target ? npos : t.domain;
  h.entry_begin = static_cast<std::uint32_t>(hot_entry.size());
  for (auto [s, by_default] : t.entry) hot_entry.push_back(s | (by_default ? hot_transition::by_default_bit : 0u));
  h.entry_end = static_cast<std::uint32_t>(hot_entry.size());
  std::uint32_t f = 0;
  if (t.static_entry) f |= hot_transition::static_entry;
  if (t.history_target) f |= hot_transition::history_target;
  if (!t.body.empty()) f |= hot_transition::body;
  h.flags = f;
  return h;
}

/// True when taking transition `ti` exits only its source and runs nothing on the way out:
/// `hot_transition::own_exit`.
bool own_exit_transition(const statechart& c, transition_index ti) {
  const auto& t = c.transitions[ti];
  const auto& h = c.hot_transitions[ti];
  if (!(h.flags & hot_transition::static_entry) || (h.flags & (hot_transition::history_target | hot_transition::body)))
    return false;
  if (t.source == npos || !c.is_atomic(t.source) || (c.hot_states[t.source].flags & (hot_state::onexit | hot_state::invokes)))
    return false;
  // The domain's active descendants are then the source alone.
  const auto parent = c.states[t.source].parent;
  return h.domain == parent && parent != npos && c.states[parent].kind != state_kind::parallel;
}

/// True when taking `own_exit` transition `ti` changes nothing but the configuration:
/// `hot_transition::direct`.
bool quiet_entry(const statechart& c, const hot_transition& h) {
  constexpr auto work = hot_state::onentry | hot_state::data | hot_state::final | hot_state::initial_body | hot_state::invokes;
  for (auto k = h.entry_begin; k != h.entry_end; ++k)
    if (c.hot_states[c.hot_entry[k] & ~hot_transition::by_default_bit].flags & work) return false;
  return true;
}

// The chain table (statechart::chain_next): not for XState's compound states without children
// (they select differently), and of bounded size. `parallel`: the chart has a parallel state.
bool chain_table_applies(const statechart& c, std::size_t& atomic_states, bool& parallel) {
  if (c.names.empty()) return false;
  atomic_states = 0;
  parallel = false;
  for (state_index s = 0; s < c.states.size(); ++s) {
    if (c.hot_states[s].flags & hot_state::childless) return false;
    parallel |= c.states[s].kind == state_kind::parallel;
    if (c.atomic_mask.test(s)) ++atomic_states;
  }
  return atomic_states * c.names.size() <= statechart::chain_table_limit;
}

// State `s`'s own answer per event name: the first of its transitions (in selection order) that
// matches the name, or chain_guarded when that one has a guard; as (name id, answer) pairs.
// `matched_by[d]`: the names descriptor `d` matches (those it is a token prefix of). `budget`: how
// many pairs all states may still add (a deep chart of `*` transitions and many names could make
// states x names of them); false when it ran out.
bool own_answers(const statechart& c, state_index s, const std::vector<std::vector<std::uint32_t>>& matched_by,
                 std::vector<state_index>& stamp, std::vector<std::pair<std::uint32_t, transition_index>>& out,
                 std::size_t& budget) {
  const auto& hs = c.hot_states[s];
  for (auto ti = hs.first_transition; ti != hs.first_transition + hs.transition_count; ++ti) {
    const auto& t = c.transitions[ti];
    const auto answer = c.hot_transitions[ti].cond != npos ? statechart::chain_guarded : ti;
    const auto mark = [&](std::uint32_t name) {
      if (stamp[name] != s && budget != 0) stamp[name] = s, out.emplace_back(name, answer), --budget;
    };
    if (t.any_event) {
      for (std::uint32_t n = 0; n < c.names.size(); ++n) mark(n);
    } else {
      for (auto d : t.events)
        for (auto n : matched_by[d]) mark(n);
    }
  }
  return budget != 0;
}

}  // namespace

void statechart::build_chain_table() {
  chain_next.clear();
  chain_slot.clear();
  chain_parallel = false;
  std::size_t atomic_states = 0;
  bool parallel = false;
  if (!chain_table_applies(*this, atomic_states, parallel)) return;
  const auto n = names.size();
  std::vector<std::vector<std::uint32_t>> matched_by(n);
  for (std::uint32_t name = 0; name < n; ++name)
    for (auto p : name_prefixes[name]) matched_by[p].push_back(name);
  std::vector<std::vector<std::pair<std::uint32_t, transition_index>>> own(states.size());
  std::vector<state_index> stamp(n, npos);
  std::size_t budget = 4 * chain_table_limit;  // 32 MB of pairs at most
  for (state_index s = 0; s < states.size(); ++s)
    if (!own_answers(*this, s, matched_by, stamp, own[s], budget)) return;
  // Selection asks the atomic state, then its ancestors (XState: up to the machine's root, state 1):
  // the nearest answer wins.
  const state_index top = semantics == chart_semantics::xstate ? 1 : 0;
  chain_next.assign(atomic_states * n, chain_none);
  chain_slot.assign(states.size(), npos);
  static_assert(chain_table_limit <= std::size_t{1} << 31, "row starts must fit in chain_slot's 32 bits");
  std::size_t row_start = 0;
  atomic_mask.for_each([&](state_index a) {
    chain_slot[a] = static_cast<std::uint32_t>(row_start);
    auto* row = chain_next.data() + row_start;
    row_start += n;
    for (auto s = a; s != npos && s >= top; s = states[s].parent)
      for (auto [name, answer] : own[s])
        if (row[name] == chain_none) row[name] = answer;
  });
  chain_parallel = parallel;
}

void statechart::finalize() {
  group_transitions_by_source(*this);
  state_ids_.clear();
  for (state_index i = 0; i < states.size(); ++i)
    if (!states[i].id.empty()) state_ids_.emplace(states[i].id, i);
  name_ids_.clear();
  for (std::uint32_t i = 0; i < names.size(); ++i) name_ids_.emplace(names[i], i);
  build_name_prefixes(*this);
  if (semantics == chart_semantics::xstate) detail::xstate_name_prefixes(*this);
  resolve_state_names(*this);
  mark_eventless(*this);
  for (auto& inv : invokes) resolve_names(*this, inv.finalize);
  resolve_names(*this, root_scripts);
  for (auto& t : transitions) {
    resolve_names(*this, t.body);
    t.history_target = std::any_of(t.targets.begin(), t.targets.end(), [&](state_index s) {
      return states[s].kind == state_kind::history;
    });
    t.domain = precomputed_domain(*this, t);
  }
  static_entry_builder entry_builder(*this);
  for (auto& t : transitions) {
    t.static_entry = false;
    if (t.domain != npos) t.static_entry = entry_builder.build(t);
  }
  if (semantics == chart_semantics::xstate) detail::xstate_finalize_transitions(*this);
  build_hot_tables();
}

void statechart::build_hot_tables() {
  atomic_mask = detail::bitset(states.size());
  has_histories = false;
  for (state_index s = 1; s < states.size(); ++s) {
    if (is_atomic(s)) atomic_mask.set(s);
    has_histories |= !states[s].histories.empty();
  }
  hot_states.assign(states.size(), {});
  hot_transitions.assign(transitions.size(), {});
  hot_entry.clear();
  for (state_index i = 0; i < states.size(); ++i) hot_states[i] = hot_state_of(*this, i);
  for (transition_index i = 0; i < transitions.size(); ++i)
    hot_transitions[i] = hot_transition_of(transitions[i], hot_entry);
  for (transition_index i = 0; i < transitions.size(); ++i) {
    auto& h = hot_transitions[i];
    if (!own_exit_transition(*this, i)) continue;
    h.flags |= hot_transition::own_exit;
    if (quiet_entry(*this, h)) h.flags |= hot_transition::direct;
  }
  build_event_index();
  build_chain_table();
}

void statechart::build_event_index() {
  // Counting sort by key. Transitions are numbered by source state, so each key's entries come out
  // sorted by source, then in document order.
  event_index_offsets.assign(eventless_key() + 2, 0);
  event_index.clear();
  const auto for_each_entry = [&](auto&& f) {
    for (state_index s = 0; s < states.size(); ++s) {
      if (!(hot_states[s].flags & hot_state::indexed)) continue;
      for (auto ti : states[s].transitions) {
        const auto& t = transitions[ti];
        if (t.any_event) f(any_key(), s, ti);
        else if (t.events.empty()) f(eventless_key(), s, ti);
        else
          for (auto d : t.events) f(d, s, ti);
      }
    }
  };
  for_each_entry([&](std::uint32_t key, state_index, transition_index) { ++event_index_offsets[key + 1]; });
  for (std::size_t k = 1; k < event_index_offsets.size(); ++k) event_index_offsets[k] += event_index_offsets[k - 1];
  event_index.resize(event_index_offsets.back());
  auto next = event_index_offsets;
  for_each_entry([&](std::uint32_t key, state_index s, transition_index ti) { event_index[next[key]++] = {s, ti}; });
}

}  // namespace xsn::inline v0
