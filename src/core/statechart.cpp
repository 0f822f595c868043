#include <xsn/model/statechart.hpp>

#include <algorithm>

namespace xsn {

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
    if (descriptor_matches(names[d], name)) return true;
  return false;
}

namespace {

std::vector<state_index> proper_ancestors(const statechart& c, state_index s) {
  std::vector<state_index> out;
  for (auto p = c.states[s].parent; p != npos; p = c.states[p].parent) out.push_back(p);
  return out;
}

/// The least common compound ancestor of `first` and `rest` (W3C findLCCA).
state_index find_lcca(const statechart& c, state_index first, const std::vector<state_index>& rest) {
  for (auto anc : proper_ancestors(c, first)) {
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

/// Computes a transition's entry set at build time (W3C computeEntrySet without history).
class static_entry_builder {
 public:
  explicit static_entry_builder(const statechart& c) : c_(c), in_(c.states.size(), 0), def_(c.states.size(), 0) {}
  bool build(transition_node& t) {
    for (auto s : t.targets) add_descendants(s);
    for (auto s : t.targets) add_ancestors(s, t.domain);
    if (!ok_) return false;
    t.entry.clear();
    for (state_index s = 0; s < in_.size(); ++s)
      if (in_[s]) t.entry.emplace_back(s, def_[s] != 0);
    return true;
  }

 private:
  bool any_in(state_index s) const {
    for (auto i = s; i < c_.states[s].subtree_end; ++i)
      if (in_[i]) return true;
    return false;
  }
  void add_descendants(state_index s) {
    const auto& st = c_.states[s];
    if (st.kind == state_kind::history || !ok_) {
      ok_ = false;
      return;
    }
    in_[s] = 1;
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
    for (auto a = c_.states[s].parent; a != npos && a != anc && a != 0; a = c_.states[a].parent) {
      in_[a] = 1;
      if (c_.states[a].kind == state_kind::parallel)
        for (auto ch : c_.states[a].children)
          if (!any_in(ch)) add_descendants(ch);
    }
  }
  const statechart& c_;
  std::vector<char> in_, def_;
  bool ok_ = true;
};

}  // namespace

void statechart::finalize() {
  state_ids_.clear();
  for (state_index i = 0; i < states.size(); ++i)
    if (!states[i].id.empty()) state_ids_.emplace(states[i].id, i);
  name_ids_.clear();
  for (std::uint32_t i = 0; i < names.size(); ++i) name_ids_.emplace(names[i], i);
  name_prefixes.assign(names.size(), {});
  for (std::uint32_t n = 0; n < names.size(); ++n)
    for (std::uint32_t d = 0; d < names.size(); ++d)
      if (descriptor_matches(names[d], names[n])) name_prefixes[n].push_back(d);
  for (auto& s : states) {
    s.done_event = "done.state." + s.id;
    s.done_name_id = find_name(s.done_event);
    for (auto& b : s.onentry) resolve_names(*this, b);
    for (auto& b : s.onexit) resolve_names(*this, b);
  }
  has_eventless = false;
  for (auto& s : states) {
    s.eventless_in_chain = s.parent != npos && states[s.parent].eventless_in_chain;
    for (auto t : s.transitions) s.eventless_in_chain |= transitions[t].eventless();
    has_eventless |= s.eventless_in_chain;
  }
  for (auto& inv : invokes) resolve_names(*this, inv.finalize);
  resolve_names(*this, root_scripts);
  for (auto& t : transitions) {
    resolve_names(*this, t.body);
    t.history_target = std::any_of(t.targets.begin(), t.targets.end(), [&](state_index s) {
      return states[s].kind == state_kind::history;
    });
    t.domain = npos;
    if (t.targets.empty() || t.history_target || t.source == npos) continue;
    const auto src = t.source;
    bool all_inside = std::all_of(t.targets.begin(), t.targets.end(),
                                  [&](state_index s) { return is_descendant(s, src); });
    if (t.internal && states[src].kind == state_kind::compound && all_inside)
      t.domain = src;
    else
      t.domain = find_lcca(*this, src, t.targets);
  }
  for (auto& t : transitions) {
    t.static_entry = false;
    if (t.domain != npos) t.static_entry = static_entry_builder(*this).build(t);
  }
}

}  // namespace xsn
