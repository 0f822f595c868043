// XState v5 JSON machine config -> statechart (semantics = xstate). Two passes: build the state
// tree in XState's key order (preorder = XState's `order`), then resolve targets, initial states and
// guards. Every problem becomes a diagnostic with line:col and the JSON pointer; nothing throws out.
#include <xsn/parse/xstate.hpp>

#include "parse_detail.hpp"

#include <boost/json/stream_parser.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <unordered_map>

namespace xsn::inline v0 {

namespace {

// ---------------------------------------------------------------------------------------------
// Locating a JSON pointer in the source text (Boost.JSON keeps no positions).

std::size_t skip_ws(std::string_view t, std::size_t i) {
  while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
  return i;
}

/// The character that the escape of `ch` (after a backslash) stands for; `ch` itself for the
/// others (a quote, a backslash, a slash; `\u` is not decoded, it locates keys only).
char unescape(char ch) {
  switch (ch) {
    case 'n': return '\n';
    case 't': return '\t';
    case 'r': return '\r';
    case 'b': return '\b';
    case 'f': return '\f';
    default: return ch;
  }
}

/// `t[i]` is the opening quote; returns the index after the closing one, decoding into `out`.
std::size_t read_string(std::string_view t, std::size_t i, std::string* out) {
  for (++i; i < t.size() && t[i] != '"'; ++i) {
    char ch = t[i];
    if (ch == '\\' && i + 1 < t.size()) ch = unescape(t[++i]);
    if (out) out->push_back(ch);
  }
  return i + 1;
}

/// True for the characters that end a JSON scalar written without quotes (a number, true, null).
bool ends_scalar(char ch) {
  return ch == ',' || ch == '}' || ch == ']' || ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
}

/// `t[i]` opens an object or an array; returns the index after its matching close.
std::size_t skip_container(std::string_view t, std::size_t i) {
  int depth = 0;
  for (; i < t.size(); ++i) {
    if (t[i] == '"') i = read_string(t, i, nullptr) - 1;
    else if (t[i] == '{' || t[i] == '[') ++depth;
    else if ((t[i] == '}' || t[i] == ']') && --depth == 0) return i + 1;
  }
  return i;
}

std::size_t skip_value(std::string_view t, std::size_t i) {
  i = skip_ws(t, i);
  if (i >= t.size()) return i;
  if (t[i] == '"') return read_string(t, i, nullptr);
  if (t[i] == '{' || t[i] == '[') return skip_container(t, i);
  while (i < t.size() && !ends_scalar(t[i])) ++i;
  return i;
}

/// The first reference token of JSON pointer `ptr` (which starts with '/'), unescaped; `ptr`
/// moves on to the rest.
std::string next_token(std::string_view& ptr) {
  ptr.remove_prefix(1);  // '/'
  auto slash = ptr.find('/');
  std::string token;
  for (std::size_t k = 0; k < std::min(slash, ptr.size()); ++k) {
    if (ptr[k] == '~' && k + 1 < ptr.size()) {
      token.push_back(ptr[k + 1] == '1' ? '/' : '~');
      ++k;
    } else {
      token.push_back(ptr[k]);
    }
  }
  ptr = slash == std::string_view::npos ? std::string_view{} : ptr.substr(slash);
  return token;
}

/// `t[i]` opens an object: the offset of the value of its member `key`, or npos. When the key
/// repeats, the first one, or with `last` the last one (the one Boost.JSON, like JavaScript, keeps;
/// finding it costs the whole object).
std::size_t member_at(std::string_view t, std::size_t i, const std::string& key, bool last) {
  auto found = std::string::npos;
  i = skip_ws(t, i + 1);
  while (i < t.size() && t[i] == '"') {
    std::string k;
    i = skip_ws(t, read_string(t, i, &k));
    i = skip_ws(t, i + 1);  // ':'
    if (k == key) {
      if (!last) return i;
      found = i;
    }
    i = skip_ws(t, skip_value(t, i));
    if (i < t.size() && t[i] == ',') i = skip_ws(t, i + 1);
  }
  return found;
}

/// `t[i]` opens an array: the offset of its element number `token`, or npos (also when `token` is
/// not a number or the array is shorter: a member name of digits, `"123abc"`, found where the text
/// has an array, must not become 123 steps, let alone 10^18 of them without progress).
std::size_t element_at(std::string_view t, std::size_t i, const std::string& token) {
  std::size_t index = 0;
  auto [p, ec] = std::from_chars(token.data(), token.data() + token.size(), index);
  if (ec != std::errc{} || p != token.data() + token.size()) return std::string::npos;
  i = skip_ws(t, i + 1);
  for (std::size_t k = 0; k < index; ++k) {  // each step passes a ',' or ends the search
    i = skip_ws(t, skip_value(t, i));
    if (i >= t.size() || t[i] != ',') return std::string::npos;
    i = skip_ws(t, i + 1);
  }
  return i;
}

/// Offset of the value at JSON pointer `ptr` in well-formed JSON `t`, or npos; `from` is the
/// offset of the value `ptr` is relative to. `last`: of repeated keys, the last (see member_at).
std::size_t locate(std::string_view t, std::string_view ptr, std::size_t from, bool last) {
  std::size_t i = skip_ws(t, from);
  while (!ptr.empty() && i < t.size()) {
    const auto token = next_token(ptr);
    if (t[i] == '{') i = member_at(t, i, token, last);
    else if (t[i] == '[') i = element_at(t, i, token);
    else return std::string::npos;
  }
  return i < t.size() ? i : std::string::npos;
}

std::string escape_token(std::string_view key) {
  std::string out;
  for (char ch : key) {
    if (ch == '~') out += "~0";
    else if (ch == '/') out += "~1";
    else out.push_back(ch);
  }
  return out;
}

/// JavaScript's own-property order: integer-like keys ascending first, then the rest as written.
std::vector<const boost::json::key_value_pair*> js_order(const boost::json::object& o) {
  std::vector<const boost::json::key_value_pair*> ints, rest;
  auto is_index = [](std::string_view k) {
    if (k.empty() || k.size() > 10 || (k.size() > 1 && k[0] == '0')) return false;
    return std::all_of(k.begin(), k.end(), [](char c) { return c >= '0' && c <= '9'; }) && std::stoull(std::string(k)) < 4294967295ull;
  };
  for (const auto& kv : o) (is_index(kv.key()) ? ints : rest).push_back(&kv);
  std::stable_sort(ints.begin(), ints.end(), [](auto* a, auto* b) {
    return std::stoull(std::string(a->key())) < std::stoull(std::string(b->key()));
  });
  ints.insert(ints.end(), rest.begin(), rest.end());
  return ints;
}

std::vector<std::string> split_path(std::string_view s) {
  std::vector<std::string> out;
  std::size_t b = 0;
  for (;;) {
    auto e = s.find('.', b);
    out.emplace_back(s.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
    if (e == std::string_view::npos) return out;
    b = e + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Small readers shared by the builder.

/// True when `v` is there and is a non-empty string.
bool non_empty_string(const value* v) { return v && v->is_string() && !v->as_string().empty(); }

/// `v`'s elements with their pointers when it is an array, else `v` itself at `ptr`.
std::vector<std::pair<const value*, std::string>> one_or_many(const value& v, const std::string& ptr) {
  std::vector<std::pair<const value*, std::string>> list;
  if (!v.is_array()) {
    list.emplace_back(&v, ptr);
    return list;
  }
  const auto& a = v.as_array();
  for (std::size_t i = 0; i < a.size(); ++i) list.emplace_back(&a[i], ptr + "/" + std::to_string(i));
  return list;
}

/// A delay key that names a delay implementation (not a number, not something like one).
bool named_delay(const std::string& key) {
  return !key.empty() && !std::isdigit(static_cast<unsigned char>(key[0])) && key[0] != '-' && key[0] != '.';
}

/// The operation of built-in actor action `type` (without its "xstate." prefix); false when it
/// is none of them.
bool actor_op_of(std::string_view type, xstate_program::actor_action::op& kind) {
  using op = xstate_program::actor_action::op;
  static constexpr std::pair<std::string_view, op> ops[] = {
      {"sendTo", op::send_to},       {"sendParent", op::send_parent}, {"forwardTo", op::forward_to},
      {"stopChild", op::stop_child}, {"spawnChild", op::spawn_child},
  };
  for (const auto& [name, k] : ops) {
    if (name != type) continue;
    kind = k;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------

class xstate_builder {
 public:
  xstate_builder(std::string_view text, std::string file, std::vector<diagnostic>& errors)
      : text_(text), file_(std::move(file)), errors_(errors) {
    for (std::size_t i = 0; i < text_.size(); ++i)
      if (text_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::shared_ptr<statechart> build(const value& root);

 private:
  using object = boost::json::object;

  struct pending_transition {
    transition_index t;
    const value* target;   // may be null (targetless)
    const value* guard;    // may be null
    std::string ptr;       // of the transition config
    bool bare = false;     // the config is the target string itself
  };
  struct pending_initial {
    state_index s;
    const value* initial;  // may be null
    std::string ptr;
  };
  struct pending_history {
    state_index s;
    const value* target;  // may be null
    std::string ptr;
  };

  // ---- diagnostics ----
  source_location at_offset(std::size_t off) const {
    if (off == std::string::npos) return {};
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), off);
    auto line = static_cast<std::uint32_t>(it - line_starts_.begin());
    return {line, static_cast<std::uint32_t>(off - line_starts_[line - 1] + 1)};
  }
  /// Where the value at `ptr` stands. Found from the nearest of the last few enclosing values
  /// already located, so that a deep state is not looked for from the top of the text each time
  /// (a chain of nested states would cost the square of its depth).
  source_location at(const std::string& ptr) {
    if (auto it = located_.find(ptr); it != located_.end()) return at_offset(it->second);
    std::size_t cut = ptr.size();
    const auto from = nearest_located(ptr, cut);
    const auto rest = from == 0 ? std::string_view(ptr) : std::string_view(ptr).substr(cut);
    auto off = locate(text_, rest, from, false);
    // Not found by the first of repeated keys: by the last ones, which the parsed document kept,
    // from the top (what was located on the way may be in a first one).
    if (off == std::string::npos) off = locate(text_, ptr, 0, true);
    located_.emplace(ptr, off);
    return at_offset(off);
  }
  /// The offset of the nearest of the last four values enclosing `ptr` that at() located, and in
  /// `cut` where its pointer ends in `ptr`; 0 when there is none.
  std::size_t nearest_located(const std::string& ptr, std::size_t& cut) const {
    for (int tries = 0; tries < 4 && cut != 0 && cut != std::string::npos; ++tries) {
      cut = ptr.rfind('/', cut - 1);
      if (cut == std::string::npos || cut == 0) break;
      if (auto it = located_.find(ptr.substr(0, cut)); it != located_.end() && it->second != std::string::npos)
        return it->second;
    }
    return 0;
  }
  void error(const std::string& ptr, std::string msg) {
    errors_.push_back({file_, at(ptr), std::move(msg) + " (at " + (ptr.empty() ? "/" : ptr) + ")"});
  }

  // ---- pass 1: the machine and its states, one function per group of keys ----
  std::string machine_id(const object& cfg);
  /// State 0, which stands above the machine's root node, and the root node under it.
  void add_top(const value& root, const std::string& machine_id);
  state_index add_state(const value& cfg, state_index parent, const std::string& key, const std::string& path_id,
                        const std::string& ptr);
  state_index new_state(state_index parent, const std::string& key, const std::string& path_id, const std::string& ptr);
  /// False, with an error and the state closed as a leaf, when the state is nested too deep or
  /// its config is not an object.
  bool usable(const value& v, state_index index, const std::string& path_id, const std::string& ptr);
  void read_state_id(state_index index, const object& cfg, const std::string& ptr);
  void check_state_keys(state_index index, const object& cfg, const std::string& ptr);
  /// The `states` object, or null when there is none or it is not an object (an error).
  const object* child_states(const object& cfg, const std::string& ptr);
  /// XState: type || (states ? compound : history ? history : atomic).
  state_kind kind_of(const object& cfg, bool has_children, const std::string& ptr);
  state_index add_history_state(state_index index, const object& cfg, bool has_children, const std::string& path_id,
                                const std::string& ptr);
  history_kind history_kind_of(const object& cfg, const std::string& ptr);
  /// What a state that is not a history holds: the checks of its kind, a final state's output,
  /// the child states, and its `initial` for the second pass.
  void add_substates(state_index index, state_kind kind, const object& cfg, const object* states,
                     const std::string& path_id, const std::string& ptr);
  void check_kind(state_kind kind, const object& cfg, bool has_children, const std::string& path_id,
                  const std::string& ptr);
  void add_final(state_index index, const object& cfg, const std::string& path_id, const std::string& ptr);
  void add_children(state_index index, const object& states, const std::string& path_id, const std::string& ptr);
  /// `entry`, `exit`, the transitions and `invoke`.
  void add_behaviour(state_index index, const object& cfg, const std::string& ptr);
  void add_transitions(state_index s, const object& cfg, const std::string& ptr);
  void add_transition_list(state_index s, const std::string& descriptor, const value& v, const std::string& ptr,
                           bool eventless);
  transition_index add_transition(state_index s, const std::string& descriptor, const value& v, const std::string& ptr,
                                  bool eventless);
  void read_transition_config(const object& o, const std::string& ptr, transition_node& t, pending_transition& p);
  void add_after(state_index s, const object& after, const std::string& ptr);
  /// Reads delay `key` into `send` (a number of milliseconds, or the name of a delay) and its
  /// text for the event name into `delay_text`; false, reported, when it is neither.
  bool read_delay(const std::string& key, const std::string& dptr, send_action& send, std::string& delay_text);
  void add_delayed_send(state_index s, send_action send, const std::string& event, const std::string& dptr);
  action_block actions(const value* v, const std::string& ptr);
  void action_use(const value& v, const std::string& ptr, action_block& out);
  // ---- actors (invoke, built-in actor actions) ----
  void add_invokes(state_index s, const value& v, const std::string& ptr);
  void add_invoke(state_index s, std::size_t i, const value& v, const std::string& ptr);
  bool actor_site_of(const object& o, const std::string& ptr, xstate_program::actor_site& site);
  /// The actor's `src`, when it is a non-empty string; else null, reported.
  const value* actor_src(const object& o, const std::string& ptr);
  /// Reads string `key` of `o`, when present, into `out`; false, reported, when it is not a
  /// non-empty string.
  bool optional_text(const object& o, const char* key, const std::string& ptr, std::string& out);
  bool actor_action_use(const std::string& type, const object& o, const std::string& ptr, action_block& out);
  bool read_actor_action(const object& o, const std::string& ptr, std::string_view t, xstate_program::actor_action& a);
  bool actor_target(const object& o, const char* key, std::string_view t, const std::string& ptr,
                    xstate_program::actor_action& a);
  bool spawn_site(const object& o, const std::string& ptr, xstate_program::actor_action& a);
  bool event_of(const object& o, const std::string& ptr, xstate_program::actor_action& a);
  std::unordered_map<std::string, std::uint32_t> actor_ids_;
  std::unordered_map<std::string, std::string> invoke_ids_;  // invoke id -> pointer of its first use
  std::uint32_t slot(std::vector<std::string>& names, std::unordered_map<std::string, std::uint32_t>& ids,
                     const std::string& name);
  expr_index add_expr(std::string text, xstate_program::expr_kind kind, std::uint32_t index, const std::string& ptr);
  std::uint32_t intern(const std::string& name);
  void check_common(const object& cfg, const std::string& ptr);
  void keep_common(state_index s, const object& cfg);
  static void keep_tags(state_node& st, const value& tags);

  // ---- pass 2 ----
  void resolve_all();
  void resolve_initial(const pending_initial& p);
  void read_initial_config(const object& o, std::string& kptr, const value*& key, const value*& initial_actions);
  void resolve_history(const pending_history& p);
  void default_history_targets(state_index s, transition_node& t);
  void add_history_target(state_index s, const value& v, const std::string& vptr, transition_node& t);
  void resolve_transition(const pending_transition& p);
  void add_target(transition_index ti, const value& x, const std::string& xptr);
  void resolve_guard(const pending_transition& p);
  state_index resolve_target(state_index source, const std::string& target, const std::string& ptr);
  /// The child (or history child) of `s` with `key`; the last one when keys repeat, npos when none.
  state_index child_by_key(state_index s, std::string_view key) const;
  state_index by_path(state_index from, const std::vector<std::string>& path, std::size_t first = 0) const;
  state_index by_id(const std::string& ref) const;
  std::uint32_t guard(const value& g, const std::string& ptr);
  bool named_guard(const value& g, const std::string& ptr, xstate_program::guard_node& node);
  bool object_guard(const object& o, const std::string& ptr, xstate_program::guard_node& node);
  bool combined_guard(const object& o, const std::string& ty, const std::string& ptr, xstate_program::guard_node& node);
  /// The sub-guards of `and`, `or`, `not` with their pointers; false, reported, when missing.
  bool sub_guards(const object& o, const std::string& ty, const std::string& ptr,
                  std::vector<std::pair<const value*, std::string>>& subs);
  bool state_in_guard(const object& o, const std::string& ptr, xstate_program::guard_node& node);
  /// `stateIn`'s state: `state`, `stateValue` or `params.state`, and its pointer in `sptr`.
  static const value* state_in_value(const object& o, const std::string& ptr, std::string& sptr);
  bool state_in(const value& v, const std::string& ptr, std::string prefix, std::vector<state_index>& out);
  bool state_in_name(const std::string& s, const std::string& ptr, const std::string& prefix,
                     std::vector<state_index>& out);
  bool state_in_member(const boost::json::key_value_pair& kv, const std::string& ptr, const std::string& prefix,
                       std::vector<state_index>& out);
  void order_transitions(state_index s);

  std::string_view text_;
  std::string file_;
  std::vector<diagnostic>& errors_;
  std::vector<std::size_t> line_starts_{0};
  std::unordered_map<std::string, std::size_t> located_;  ///< at()'s memory: pointer -> offset
  std::shared_ptr<statechart> c_;
  std::shared_ptr<xstate_program> p_;
  std::unordered_map<std::string, state_index> ids_;
  std::unordered_map<std::string, std::uint32_t> names_, guard_ids_, action_ids_, delay_ids_;
  std::vector<pending_transition> pending_;
  std::vector<pending_initial> initials_;
  std::vector<pending_history> histories_;
  std::vector<std::string> state_ptr_;
};

std::uint32_t xstate_builder::intern(const std::string& name) {
  auto [it, inserted] = names_.emplace(name, static_cast<std::uint32_t>(c_->names.size()));
  if (inserted) c_->names.push_back(name);
  return it->second;
}

std::uint32_t xstate_builder::slot(std::vector<std::string>& names, std::unordered_map<std::string, std::uint32_t>& ids,
                                   const std::string& name) {
  auto [it, inserted] = ids.emplace(name, static_cast<std::uint32_t>(names.size()));
  if (inserted) names.push_back(name);
  return it->second;
}

expr_index xstate_builder::add_expr(std::string text, xstate_program::expr_kind kind, std::uint32_t index,
                                    const std::string& ptr) {
  c_->expressions.push_back({std::move(text), at(ptr)});
  p_->exprs.push_back({kind, index});
  return static_cast<expr_index>(c_->expressions.size() - 1);
}

void xstate_builder::check_common(const object& cfg, const std::string& ptr) {
  if (auto* d = cfg.if_contains("description"); d && !d->is_string()) error(ptr + "/description", "'description' must be a string");
  if (auto* t = cfg.if_contains("tags")) {
    bool ok = t->is_string();
    if (t->is_array()) ok = std::all_of(t->as_array().begin(), t->as_array().end(), [](const value& x) { return x.is_string(); });
    if (!ok) error(ptr + "/tags", "'tags' must be a string or an array of strings");
  }
}

void xstate_builder::keep_common(state_index s, const object& cfg) {
  auto& st = c_->states[s];
  if (auto* d = cfg.if_contains("description"); d && d->is_string()) st.description = std::string(d->as_string());
  if (auto* t = cfg.if_contains("tags")) keep_tags(st, *t);
  if (auto* m = cfg.if_contains("meta")) {
    if (p_->meta.size() <= s) p_->meta.resize(s + 1);
    p_->meta[s] = *m;
  }
}

void xstate_builder::keep_tags(state_node& st, const value& tags) {
  if (tags.is_string()) st.tags.emplace_back(tags.as_string());
  else if (tags.is_array())
    for (const auto& x : tags.as_array())
      if (x.is_string()) st.tags.emplace_back(x.as_string());
}

std::shared_ptr<statechart> xstate_builder::build(const value& root) {
  c_ = std::make_shared<statechart>();
  p_ = std::make_shared<xstate_program>();
  c_->semantics = chart_semantics::xstate;
  c_->datamodel = "xstate";
  c_->source_name = file_;
  if (!root.is_object()) {
    error("", "an XState machine config must be a JSON object");
    return nullptr;
  }
  const auto& cfg = root.as_object();
  const std::string id = machine_id(cfg);
  c_->name = id;
  if (auto* ctx = cfg.if_contains("context")) p_->context = *ctx;
  if (auto* out = cfg.if_contains("output")) p_->output = *out;
  add_top(root, id);
  resolve_all();
  if (!errors_.empty()) return nullptr;
  p_->meta.resize(c_->states.size());
  c_->xstate = p_;
  c_->finalize();
  return c_;
}

std::string xstate_builder::machine_id(const object& cfg) {
  auto* id = cfg.if_contains("id");
  if (!id) return "(machine)";
  if (!non_empty_string(id)) {
    error("/id", "'id' must be a non-empty string");
    return "(machine)";
  }
  return std::string(id->as_string());
}

void xstate_builder::add_top(const value& root, const std::string& machine_id) {
  c_->states.emplace_back();
  c_->states[0].kind = state_kind::compound;
  state_ptr_.emplace_back("");
  auto root_index = add_state(root, 0, machine_id, machine_id, "");
  c_->states[0].children.push_back(root_index);
  c_->states[0].subtree_end = static_cast<state_index>(c_->states.size());
  transition_node init;
  init.source = 0;
  init.targets.push_back(root_index);
  c_->transitions.push_back(std::move(init));
  c_->states[0].initial = static_cast<transition_index>(c_->transitions.size() - 1);
}

// ---- states ----

state_index xstate_builder::add_state(const value& v, state_index parent, const std::string& key,
                                      const std::string& path_id, const std::string& ptr) {
  const auto index = new_state(parent, key, path_id, ptr);
  if (!usable(v, index, path_id, ptr)) return index;
  const auto& cfg = v.as_object();
  check_common(cfg, ptr);
  keep_common(index, cfg);
  read_state_id(index, cfg, ptr);
  check_state_keys(index, cfg, ptr);
  const object* states = child_states(cfg, ptr);
  const bool has_children = states && !states->empty();
  const state_kind kind = kind_of(cfg, has_children, ptr);
  c_->states[index].kind = kind;
  if (kind == state_kind::history) return add_history_state(index, cfg, has_children, path_id, ptr);
  add_substates(index, kind, cfg, states, path_id, ptr);
  add_behaviour(index, cfg, ptr);
  return index;
}

state_index xstate_builder::new_state(state_index parent, const std::string& key, const std::string& path_id,
                                      const std::string& ptr) {
  const auto index = static_cast<state_index>(c_->states.size());
  c_->states.emplace_back();
  state_ptr_.push_back(ptr);
  auto& st = c_->states[index];
  st.parent = parent;
  st.depth = c_->states[parent].depth + 1;
  st.key = key;
  st.id = path_id;
  st.loc = at(ptr);
  return index;
}

bool xstate_builder::usable(const value& v, state_index index, const std::string& path_id, const std::string& ptr) {
  if (c_->states[index].depth - 1 > max_state_depth)  // the machine itself stands for <scxml>
    error(ptr, "states nested deeper than " + std::to_string(max_state_depth));
  else if (!v.is_object())
    error(ptr, "state '" + path_id + "' must be an object");
  else
    return true;
  c_->states[index].subtree_end = index + 1;
  return false;
}

void xstate_builder::read_state_id(state_index index, const object& cfg, const std::string& ptr) {
  auto& st = c_->states[index];
  if (auto* id = cfg.if_contains("id"); id && index != 1) {
    if (!non_empty_string(id)) error(ptr + "/id", "'id' must be a non-empty string");
    else st.id = std::string(id->as_string()), st.explicit_id = true;
  }
  if (index == 1) st.explicit_id = cfg.contains("id");
  if (auto [it, inserted] = ids_.emplace(st.id, index); !inserted)
    error(ptr + (cfg.contains("id") ? "/id" : ""), "duplicate state id '" + st.id + "'");
}

void xstate_builder::check_state_keys(state_index index, const object& cfg, const std::string& ptr) {
  if (cfg.contains("cond")) error(ptr + "/cond", "'cond' is XState v4; use 'guard' on a transition");
  if (index != 1 && cfg.contains("context")) error(ptr + "/context", "'context' belongs to the machine (the root), not to a state");
}

const boost::json::object* xstate_builder::child_states(const object& cfg, const std::string& ptr) {
  auto* s = cfg.if_contains("states");
  if (!s) return nullptr;
  if (!s->is_object()) {
    error(ptr + "/states", "'states' must be an object");
    return nullptr;
  }
  return &s->as_object();
}

state_kind xstate_builder::kind_of(const object& cfg, bool has_children, const std::string& ptr) {
  const state_kind implied =
      has_children ? state_kind::compound : cfg.contains("history") ? state_kind::history : state_kind::atomic;
  auto* t = cfg.if_contains("type");
  if (!t) return implied;
  static constexpr std::pair<std::string_view, state_kind> kinds[] = {
      {"atomic", state_kind::atomic}, {"compound", state_kind::compound}, {"parallel", state_kind::parallel},
      {"final", state_kind::final_state}, {"history", state_kind::history},
  };
  std::string_view ty = t->is_string() ? std::string_view(t->as_string()) : std::string_view{};
  for (const auto& [name, kind] : kinds)
    if (name == ty) return kind;
  error(ptr + "/type", "'type' must be one of atomic, compound, parallel, final, history");
  return implied;
}

state_index xstate_builder::add_history_state(state_index index, const object& cfg, bool has_children,
                                              const std::string& path_id, const std::string& ptr) {
  const auto parent_kind = c_->states[c_->states[index].parent].kind;
  if (index == 1) error(ptr, "the machine's root cannot be a history state");
  else if (parent_kind == state_kind::atomic || parent_kind == state_kind::final_state)
    error(ptr, "history state '" + path_id + "' needs a compound or parallel parent");
  c_->states[index].history = history_kind_of(cfg, ptr);
  if (has_children) error(ptr + "/states", "a history state cannot have child states");
  for (const char* k : {"on", "entry", "exit", "after", "always", "onDone", "invoke"})
    if (cfg.contains(k)) error(ptr + "/" + k, std::string("a history state cannot have '") + k + "'");
  histories_.push_back({index, cfg.if_contains("target"), ptr});
  c_->states[index].subtree_end = index + 1;
  return index;
}

history_kind xstate_builder::history_kind_of(const object& cfg, const std::string& ptr) {
  auto* hv = cfg.if_contains("history");
  if (!hv) return history_kind::shallow;
  if (hv->is_string() && hv->as_string() == "deep") return history_kind::deep;
  if (!(hv->is_string() && hv->as_string() == "shallow")) error(ptr + "/history", "'history' must be \"shallow\" or \"deep\"");
  return history_kind::shallow;
}

void xstate_builder::add_substates(state_index index, state_kind kind, const object& cfg, const object* states,
                                   const std::string& path_id, const std::string& ptr) {
  check_kind(kind, cfg, states && !states->empty(), path_id, ptr);
  if (kind == state_kind::final_state) add_final(index, cfg, path_id, ptr);
  if (states && kind != state_kind::atomic && kind != state_kind::final_state) add_children(index, *states, path_id, ptr);
  c_->states[index].subtree_end = static_cast<state_index>(c_->states.size());
  if (kind == state_kind::compound) initials_.push_back({index, cfg.if_contains("initial"), ptr});
}

void xstate_builder::check_kind(state_kind kind, const object& cfg, bool has_children, const std::string& path_id,
                                const std::string& ptr) {
  if (cfg.contains("history")) error(ptr + "/history", "'history' is only allowed on a history state");
  if (kind == state_kind::atomic && has_children) error(ptr + "/type", "an atomic state cannot have child states");
  if (kind == state_kind::final_state && has_children) error(ptr + "/states", "a final state cannot have child states");
  if (kind == state_kind::compound && !has_children) error(ptr, "compound state '" + path_id + "' has no child states");
}

void xstate_builder::add_final(state_index index, const object& cfg, const std::string& path_id, const std::string& ptr) {
  for (const char* k : {"on", "after", "always", "onDone"})
    if (cfg.contains(k)) error(ptr + "/" + k, std::string("a final state cannot have '") + k + "'");
  auto* out = cfg.if_contains("output");
  if (!out) return;
  p_->outputs.push_back(*out);
  auto e = add_expr("output of " + path_id, xstate_program::expr_kind::output,
                    static_cast<std::uint32_t>(p_->outputs.size() - 1), ptr + "/output");
  donedata d;
  d.body = content{};
  d.body->expr = e;
  c_->states[index].done = std::move(d);
}

void xstate_builder::add_children(state_index index, const object& states, const std::string& path_id,
                                  const std::string& ptr) {
  for (const auto* kv : js_order(states)) {
    std::string k(kv->key());
    auto child_ptr = ptr + "/states/" + escape_token(k);
    if (k.empty()) error(child_ptr, "a state key cannot be empty");
    auto child = add_state(kv->value(), index, k, path_id + "." + k, child_ptr);
    if (c_->states[child].kind == state_kind::history) c_->states[index].histories.push_back(child);
    else c_->states[index].children.push_back(child);
  }
}

void xstate_builder::add_behaviour(state_index index, const object& cfg, const std::string& ptr) {
  c_->states[index].onentry.push_back(actions(cfg.if_contains("entry"), ptr + "/entry"));
  c_->states[index].onexit.push_back(actions(cfg.if_contains("exit"), ptr + "/exit"));
  add_transitions(index, cfg, ptr);
  if (auto* inv = cfg.if_contains("invoke")) add_invokes(index, *inv, ptr + "/invoke");
  if (c_->states[index].onentry.back().empty()) c_->states[index].onentry.pop_back();
  if (c_->states[index].onexit.back().empty()) c_->states[index].onexit.pop_back();
}

// ---- actions and transitions ----

action_block xstate_builder::actions(const value* v, const std::string& ptr) {
  action_block out;
  if (!v || v->is_null()) return out;
  if (v->is_array()) {
    const auto& a = v->as_array();
    for (std::size_t i = 0; i < a.size(); ++i) action_use(a[i], ptr + "/" + std::to_string(i), out);
  } else {
    action_use(*v, ptr, out);
  }
  return out;
}

void xstate_builder::action_use(const value& v, const std::string& ptr, action_block& out) {
  std::string name;
  value params;
  if (v.is_string()) {
    name = std::string(v.as_string());
  } else if (v.is_object()) {
    const auto& o = v.as_object();
    auto* type = o.if_contains("type");
    if (!type || !type->is_string()) {
      error(ptr, "an action object needs a string 'type'");
      return;
    }
    name = std::string(type->as_string());
    if (actor_action_use(name, o, ptr, out)) return;
    if (auto* p = o.if_contains("params")) params = *p;
  } else {
    error(ptr, "an action must be a name or an object {\"type\": name, \"params\": ...}");
    return;
  }
  if (name.empty()) {
    error(ptr, "an action name cannot be empty");
    return;
  }
  p_->actions.push_back({slot(p_->action_names, action_ids_, name), std::move(params)});
  action a;
  a.op = script_action{add_expr("action " + name, xstate_program::expr_kind::action,
                                static_cast<std::uint32_t>(p_->actions.size() - 1), ptr)};
  a.loc = at(ptr);
  out.push_back(std::move(a));
}

void xstate_builder::add_transitions(state_index s, const object& cfg, const std::string& ptr) {
  if (auto* on = cfg.if_contains("on")) {
    if (!on->is_object()) {
      error(ptr + "/on", "'on' must be an object mapping event descriptors to transitions");
    } else {
      for (const auto* kv : js_order(on->as_object())) {
        std::string d(kv->key());
        auto tptr = ptr + "/on/" + escape_token(d);
        if (d.empty()) {
          error(tptr, "an empty event descriptor is not allowed; use 'always' for eventless transitions");
          continue;
        }
        add_transition_list(s, d, kv->value(), tptr, false);
      }
    }
  }
  if (auto* done = cfg.if_contains("onDone")) add_transition_list(s, "xstate.done.state." + c_->states[s].id, *done, ptr + "/onDone", false);
  if (auto* after = cfg.if_contains("after")) {
    if (!after->is_object()) error(ptr + "/after", "'after' must be an object mapping delays to transitions");
    else add_after(s, after->as_object(), ptr + "/after");
  }
  if (auto* always = cfg.if_contains("always")) add_transition_list(s, "", *always, ptr + "/always", true);
}

void xstate_builder::add_after(state_index s, const object& after, const std::string& ptr) {
  for (const auto* kv : js_order(after)) {
    std::string key(kv->key());
    auto dptr = ptr + "/" + escape_token(key);
    send_action send;
    std::string delay_text = key;
    if (!read_delay(key, dptr, send, delay_text)) continue;
    const std::string event = "xstate.after." + delay_text + "." + c_->states[s].id;
    add_delayed_send(s, std::move(send), event, dptr);
    add_transition_list(s, event, kv->value(), dptr, false);
  }
}

bool xstate_builder::read_delay(const std::string& key, const std::string& dptr, send_action& send,
                                std::string& delay_text) {
  std::int64_t ms = 0;
  auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), ms);
  const bool numeric = !key.empty() && ec == std::errc{} && end == key.data() + key.size();
  if (numeric && ms < 0) {
    error(dptr, "a delay cannot be negative");
    return false;
  }
  if (numeric) {
    delay_text = std::to_string(ms);
    send.delay = std::chrono::milliseconds(ms);
  } else if (!named_delay(key)) {
    error(dptr, "delay '" + key + "' must be a whole number of milliseconds or the name of a delay");
    return false;
  } else {
    auto d = slot(p_->delay_names, delay_ids_, key);
    send.delayexpr = add_expr("delay " + key, xstate_program::expr_kind::delay, d, dptr);
  }
  return true;
}

void xstate_builder::add_delayed_send(state_index s, send_action send, const std::string& event, const std::string& dptr) {
  send.event = event;
  send.id = event;
  action a;
  a.op = std::move(send);
  a.loc = at(dptr);
  if (c_->states[s].onentry.empty()) c_->states[s].onentry.emplace_back();
  c_->states[s].onentry.back().push_back(std::move(a));
  action cancel;
  cancel.op = cancel_action{event, npos};
  if (c_->states[s].onexit.empty()) c_->states[s].onexit.emplace_back();
  c_->states[s].onexit.back().push_back(std::move(cancel));
}

void xstate_builder::add_transition_list(state_index s, const std::string& descriptor, const value& v,
                                         const std::string& ptr, bool eventless) {
  if (v.is_array()) {
    const auto& a = v.as_array();
    for (std::size_t i = 0; i < a.size(); ++i) add_transition(s, descriptor, a[i], ptr + "/" + std::to_string(i), eventless);
  } else {
    add_transition(s, descriptor, v, ptr, eventless);
  }
}

transition_index xstate_builder::add_transition(state_index s, const std::string& descriptor, const value& v,
                                                const std::string& ptr, bool eventless) {
  transition_node t;
  t.source = s;
  t.loc = at(ptr);
  if (!eventless && descriptor == "*") t.any_event = true;
  else if (!eventless) t.events.push_back(intern(descriptor));
  pending_transition p{static_cast<transition_index>(c_->transitions.size()), nullptr, nullptr, ptr, false};
  if (v.is_string()) {
    p.target = &v;
    p.bare = true;
  } else if (v.is_object()) {
    read_transition_config(v.as_object(), ptr, t, p);
  } else if (!v.is_null()) {
    error(ptr, "a transition must be a target string, an object or an array of them");
  }
  c_->transitions.push_back(std::move(t));
  c_->states[s].transitions.push_back(p.t);
  pending_.push_back(std::move(p));
  return pending_.back().t;
}

void xstate_builder::read_transition_config(const object& o, const std::string& ptr, transition_node& t,
                                            pending_transition& p) {
  p.target = o.if_contains("target");
  p.guard = o.if_contains("guard");
  if (o.contains("cond")) error(ptr + "/cond", "'cond' is XState v4; use 'guard'");
  if (o.contains("internal")) error(ptr + "/internal", "'internal' is XState v4; use 'reenter'");
  if (auto* r = o.if_contains("reenter")) {
    if (!r->is_bool()) error(ptr + "/reenter", "'reenter' must be true or false");
    else t.reenter = r->as_bool();
  }
  if (auto* d = o.if_contains("description"); d && !d->is_string()) error(ptr + "/description", "'description' must be a string");
  t.body = actions(o.if_contains("actions"), ptr + "/actions");
}

// ---- actors ----

void xstate_builder::add_invokes(state_index s, const value& v, const std::string& ptr) {
  const auto list = one_or_many(v, ptr);
  for (std::size_t i = 0; i < list.size(); ++i) add_invoke(s, i, *list[i].first, list[i].second);
}

void xstate_builder::add_invoke(state_index s, std::size_t i, const value& v, const std::string& iptr) {
  if (!v.is_object()) {
    error(iptr, "an invoke must be an object {\"src\": name, ...}");
    return;
  }
  const auto& o = v.as_object();
  xstate_program::actor_site site;
  if (!actor_site_of(o, iptr, site)) return;
  if (o.contains("onSnapshot")) error(iptr + "/onSnapshot", "'onSnapshot' is not supported yet");
  if (site.id.empty()) site.id = std::to_string(i) + "." + c_->states[s].id;  // XState's createInvokeId
  if (auto [it, inserted] = invoke_ids_.emplace(site.id, iptr); !inserted) {
    error(iptr, "duplicate invoke id '" + site.id + "'");
    return;
  }
  invoke_decl d;
  d.type = "xstate";
  d.src = p_->actor_names[site.src];
  d.id = site.id;
  d.parent = s;
  d.loc = at(iptr);
  c_->states[s].invokes.push_back(static_cast<std::uint32_t>(c_->invokes.size()));
  c_->invokes.push_back(std::move(d));
  if (auto* done = o.if_contains("onDone")) add_transition_list(s, "xstate.done.actor." + site.id, *done, iptr + "/onDone", false);
  if (auto* err = o.if_contains("onError")) add_transition_list(s, "xstate.error.actor." + site.id, *err, iptr + "/onError", false);
  p_->invokes.push_back(std::move(site));
}

bool xstate_builder::actor_site_of(const object& o, const std::string& ptr, xstate_program::actor_site& site) {
  auto* src = actor_src(o, ptr);
  if (!src) return false;
  bool ok = optional_text(o, "id", ptr, site.id);
  ok = optional_text(o, "systemId", ptr, site.system_id) && ok;
  if (auto* in = o.if_contains("input")) site.input = *in;
  if (!ok) return false;
  site.src = slot(p_->actor_names, actor_ids_, std::string(src->as_string()));
  return true;
}

const value* xstate_builder::actor_src(const object& o, const std::string& ptr) {
  auto* src = o.if_contains("src");
  if (!src) {
    error(ptr, "'src' is required: the name of actor logic provided to the implementations");
    return nullptr;
  }
  if (src->is_object()) {
    error(ptr + "/src", "inline actor logic is not supported; name it and provide it with implementations::actor");
    return nullptr;
  }
  if (!non_empty_string(src)) {
    error(ptr + "/src", "'src' must be a non-empty string (an actor name)");
    return nullptr;
  }
  return src;
}

bool xstate_builder::optional_text(const object& o, const char* key, const std::string& ptr, std::string& out) {
  auto* x = o.if_contains(key);
  if (!x) return true;
  if (!non_empty_string(x)) {
    error(ptr + "/" + key, std::string("'") + key + "' must be a non-empty string");
    return false;
  }
  out = std::string(x->as_string());
  return true;
}

bool xstate_builder::event_of(const object& o, const std::string& ptr, xstate_program::actor_action& a) {
  auto* ev = o.if_contains("event");
  if (non_empty_string(ev)) {
    a.event = std::string(ev->as_string());
    return true;
  }
  const value* type = ev && ev->is_object() ? ev->as_object().if_contains("type") : nullptr;
  if (!non_empty_string(type)) {
    error(ev ? ptr + "/event" : ptr, "'event' must be an event name or an object with a non-empty string 'type'");
    return false;
  }
  a.event = std::string(type->as_string());
  boost::json::object data = ev->as_object();
  data.erase("type");
  if (!data.empty()) a.data = std::move(data);
  return true;
}

bool xstate_builder::actor_action_use(const std::string& type, const object& o, const std::string& ptr, action_block& out) {
  std::string_view t = type;
  if (t.rfind("xstate.", 0) == 0) t.remove_prefix(7);
  xstate_program::actor_action a;
  if (!actor_op_of(t, a.kind)) return false;
  if (!read_actor_action(o, ptr, t, a)) return true;  // reported; the use is dropped
  p_->actor_actions.push_back(std::move(a));
  action act;
  act.op = script_action{add_expr("action " + std::string(t), xstate_program::expr_kind::actor_action,
                                  static_cast<std::uint32_t>(p_->actor_actions.size() - 1), ptr)};
  act.loc = at(ptr);
  out.push_back(std::move(act));
  return true;
}

bool xstate_builder::read_actor_action(const object& o, const std::string& ptr, std::string_view t,
                                       xstate_program::actor_action& a) {
  using op = xstate_program::actor_action::op;
  switch (a.kind) {
    case op::send_to: return actor_target(o, "to", t, ptr, a) && event_of(o, ptr, a);
    case op::send_parent: return event_of(o, ptr, a);
    case op::forward_to: return actor_target(o, "to", t, ptr, a);
    case op::stop_child: return actor_target(o, "id", t, ptr, a);
    case op::spawn_child: return spawn_site(o, ptr, a);
  }
  return true;
}

bool xstate_builder::actor_target(const object& o, const char* key, std::string_view t, const std::string& ptr,
                                  xstate_program::actor_action& a) {
  auto* x = o.if_contains(key);
  if (!non_empty_string(x)) {
    error(x ? ptr + "/" + key : ptr, "'" + std::string(t) + "' needs '" + key + "': a non-empty string (a child id or systemId)");
    return false;
  }
  a.to = std::string(x->as_string());
  return true;
}

bool xstate_builder::spawn_site(const object& o, const std::string& ptr, xstate_program::actor_action& a) {
  xstate_program::actor_site site;
  if (!actor_site_of(o, ptr, site)) return false;
  a.site = static_cast<std::uint32_t>(p_->spawns.size());
  p_->spawns.push_back(std::move(site));
  return true;
}

// ---- pass 2 ----

void xstate_builder::resolve_all() {
  for (const auto& p : initials_) resolve_initial(p);
  for (const auto& p : histories_) resolve_history(p);
  for (const auto& p : pending_) resolve_transition(p);
  for (state_index s = 0; s < c_->states.size(); ++s) order_transitions(s);
}

state_index xstate_builder::child_by_key(state_index s, std::string_view key) const {
  state_index found = npos;
  const auto& st = c_->states[s];
  for (auto list : {&st.children, &st.histories})
    for (auto ch : *list)
      if (c_->states[ch].key == key) found = ch;
  return found;
}

state_index xstate_builder::by_path(state_index from, const std::vector<std::string>& path, std::size_t first) const {
  auto cur = from;
  for (std::size_t i = first; i < path.size(); ++i) {
    if (path[i].empty()) break;  // XState stops at an empty key
    cur = child_by_key(cur, path[i]);
    if (cur == npos) return npos;
  }
  return cur;
}

state_index xstate_builder::by_id(const std::string& ref) const {
  if (auto it = ids_.find(ref); it != ids_.end()) return it->second;
  auto path = split_path(ref);  // "#id.child.grandchild"
  auto it = ids_.find(path[0]);
  if (it == ids_.end()) return npos;
  return by_path(it->second, path, 1);
}

state_index xstate_builder::resolve_target(state_index source, const std::string& target, const std::string& ptr) {
  state_index r = npos;
  if (target.empty()) {
    error(ptr, "a target cannot be empty");
    return npos;
  }
  if (target[0] == '#') {
    r = by_id(target.substr(1));
  } else if (target[0] == '.') {
    r = by_path(source, split_path(target.substr(1)));
  } else {
    if (source == 1) {
      error(ptr, "'" + target + "' is not a valid target from the root node; did you mean '." + target + "'?");
      return npos;
    }
    r = by_path(c_->states[source].parent, split_path(target));
  }
  if (r == npos || r == 0) error(ptr, "unknown target '" + target + "' from state '" + c_->states[source].id + "'");
  return r == 0 ? npos : r;
}

void xstate_builder::resolve_transition(const pending_transition& p) {
  if (p.target && !p.target->is_null()) {
    const std::string base = p.bare ? p.ptr : p.ptr + "/target";
    if (!p.target->is_array()) add_target(p.t, *p.target, base);
    else
      for (std::size_t i = 0; i < p.target->as_array().size(); ++i)
        add_target(p.t, p.target->as_array()[i], base + "/" + std::to_string(i));
  }
  if (p.guard && !p.guard->is_null()) resolve_guard(p);
}

void xstate_builder::add_target(transition_index ti, const value& x, const std::string& xptr) {
  auto& t = c_->transitions[ti];
  if (!x.is_string()) {
    error(xptr, "a target must be a string");
    return;
  }
  auto s = resolve_target(t.source, std::string(x.as_string()), xptr);
  if (s != npos && std::find(t.targets.begin(), t.targets.end(), s) == t.targets.end()) t.targets.push_back(s);
}

void xstate_builder::resolve_guard(const pending_transition& p) {
  auto root = guard(*p.guard, p.ptr + "/guard");
  if (root == npos) return;
  std::string text = p.guard->is_string() ? "guard " + std::string(p.guard->as_string()) : "guard " + boost::json::serialize(*p.guard);
  c_->transitions[p.t].cond = add_expr(std::move(text), xstate_program::expr_kind::guard, root, p.ptr + "/guard");
}

// ---- guards: one function per form ----

std::uint32_t xstate_builder::guard(const value& g, const std::string& ptr) {
  xstate_program::guard_node node;
  bool ok = false;
  if (g.is_string()) ok = named_guard(g, ptr, node);
  else if (g.is_object()) ok = object_guard(g.as_object(), ptr, node);
  else error(ptr, "a guard must be a name or an object {\"type\": ...}");
  if (!ok) return npos;
  p_->guards.push_back(std::move(node));
  return static_cast<std::uint32_t>(p_->guards.size() - 1);
}

bool xstate_builder::named_guard(const value& g, const std::string& ptr, xstate_program::guard_node& node) {
  if (g.as_string().empty()) {
    error(ptr, "a guard name cannot be empty");
    return false;
  }
  node.name = slot(p_->guard_names, guard_ids_, std::string(g.as_string()));
  return true;
}

bool xstate_builder::object_guard(const object& o, const std::string& ptr, xstate_program::guard_node& node) {
  auto* type = o.if_contains("type");
  if (!non_empty_string(type)) {
    error(ptr, "a guard object needs a non-empty string 'type'");
    return false;
  }
  std::string ty(type->as_string());
  if (ty.rfind("xstate.", 0) == 0) ty = ty.substr(7);
  if (ty == "and" || ty == "or" || ty == "not") return combined_guard(o, ty, ptr, node);
  if (ty == "stateIn") return state_in_guard(o, ptr, node);
  node.name = slot(p_->guard_names, guard_ids_, std::string(type->as_string()));
  if (auto* params = o.if_contains("params")) node.params = *params;
  return true;
}

bool xstate_builder::combined_guard(const object& o, const std::string& ty, const std::string& ptr,
                                    xstate_program::guard_node& node) {
  using op = xstate_program::guard_node::op;
  node.kind = ty == "and" ? op::all : ty == "or" ? op::any : op::negate;
  std::vector<std::pair<const value*, std::string>> subs;
  if (!sub_guards(o, ty, ptr, subs)) return false;
  if (ty == "not" && subs.size() != 1) {
    error(ptr, "guard 'not' takes exactly one guard");
    return false;
  }
  for (auto& [sv, sptr] : subs) {
    auto child = guard(*sv, sptr);
    if (child == npos) return false;
    node.children.push_back(child);
  }
  return true;
}

bool xstate_builder::sub_guards(const object& o, const std::string& ty, const std::string& ptr,
                                std::vector<std::pair<const value*, std::string>>& subs) {
  if (auto* gs = o.if_contains("guards")) {
    if (!gs->is_array()) {
      error(ptr + "/guards", "'guards' of '" + ty + "' must be an array");
      return false;
    }
    for (std::size_t i = 0; i < gs->as_array().size(); ++i) subs.emplace_back(&gs->as_array()[i], ptr + "/guards/" + std::to_string(i));
    return true;
  }
  if (auto* one = o.if_contains("guard"); one && ty == "not") {
    subs.emplace_back(one, ptr + "/guard");
    return true;
  }
  error(ptr, "guard '" + ty + "' needs " + (ty == "not" ? "'guard' or " : "") + "'guards'");
  return false;
}

bool xstate_builder::state_in_guard(const object& o, const std::string& ptr, xstate_program::guard_node& node) {
  node.kind = xstate_program::guard_node::op::state_in;
  std::string sptr;
  const value* sv = state_in_value(o, ptr, sptr);
  if (!sv) {
    error(ptr, "guard 'stateIn' needs 'state' (\"#id\", a path or a state value)");
    return false;
  }
  return state_in(*sv, sptr, {}, node.states);
}

const value* xstate_builder::state_in_value(const object& o, const std::string& ptr, std::string& sptr) {
  if (auto* sv = o.if_contains("state")) {
    sptr = ptr + "/state";
    return sv;
  }
  if (auto* sv = o.if_contains("stateValue")) {
    sptr = ptr + "/stateValue";
    return sv;
  }
  auto* params = o.if_contains("params");
  if (!params || !params->is_object()) return nullptr;
  sptr = ptr + "/params/state";
  return params->as_object().if_contains("state");
}

bool xstate_builder::state_in(const value& v, const std::string& ptr, std::string prefix, std::vector<state_index>& out) {
  if (v.is_string()) return state_in_name(std::string(v.as_string()), ptr, prefix, out);
  if (v.is_object()) {
    for (const auto& kv : v.as_object())
      if (!state_in_member(kv, ptr, prefix, out)) return false;
    return true;
  }
  error(ptr, "stateIn: the state must be \"#id\", a path string or a state value object");
  return false;
}

bool xstate_builder::state_in_name(const std::string& s, const std::string& ptr, const std::string& prefix,
                                   std::vector<state_index>& out) {
  const std::string path = prefix.empty() ? s : prefix + "." + s;
  const state_index r = prefix.empty() && !s.empty() && s[0] == '#' ? by_id(s.substr(1)) : by_path(1, split_path(path));
  if (s.empty() || r == npos) {
    error(ptr, "stateIn: unknown state '" + path + "'");
    return false;
  }
  out.push_back(r);
  return true;
}

bool xstate_builder::state_in_member(const boost::json::key_value_pair& kv, const std::string& ptr,
                                     const std::string& prefix, std::vector<state_index>& out) {
  std::string path = prefix.empty() ? std::string(kv.key()) : prefix + "." + std::string(kv.key());
  auto kptr = ptr + "/" + escape_token(kv.key());
  if (!kv.value().is_object() || !kv.value().as_object().empty()) return state_in(kv.value(), kptr, path, out);
  auto r = by_path(1, split_path(path));
  if (r == npos) {
    error(kptr, "stateIn: unknown state '" + path + "'");
    return false;
  }
  out.push_back(r);
  return true;
}

// ---- initial states and history defaults ----

void xstate_builder::resolve_initial(const pending_initial& p) {
  const auto& st = c_->states[p.s];
  if (!p.initial || p.initial->is_null()) {
    error(p.ptr, "compound state '" + st.id + "' needs 'initial'");
    return;
  }
  const value* key = p.initial;
  std::string kptr = p.ptr + "/initial";
  const value* initial_actions = nullptr;
  if (p.initial->is_object()) read_initial_config(p.initial->as_object(), kptr, key, initial_actions);
  if (!key || !key->is_string()) {
    error(kptr, "'initial' must be the key of a child state");
    return;
  }
  const auto target = child_by_key(p.s, key->as_string());
  if (target == npos) {
    error(kptr, "initial state '" + std::string(key->as_string()) + "' is not a child of '" + st.id + "'");
    return;
  }
  transition_node t;
  t.source = p.s;
  t.targets.push_back(target);
  // XState runs these when the state is entered by default (its initial child is not targeted).
  t.body = actions(initial_actions, p.ptr + "/initial/actions");
  c_->transitions.push_back(std::move(t));
  c_->states[p.s].initial = static_cast<transition_index>(c_->transitions.size() - 1);
}

void xstate_builder::read_initial_config(const object& o, std::string& kptr, const value*& key,
                                         const value*& initial_actions) {
  if (auto* d = o.if_contains("description"); d && !d->is_string()) error(kptr + "/description", "'description' must be a string");
  key = o.if_contains("target"), kptr += "/target";
  initial_actions = o.if_contains("actions");
}

void xstate_builder::resolve_history(const pending_history& p) {
  transition_node t;
  t.source = p.s;
  if (!p.target || p.target->is_null()) {
    default_history_targets(p.s, t);
    // XState resolves such a default through the parent's `initial`; when that is this history
    // state, entering it would enter itself without end (a fuzz finding: fuzz/findings/).
    if (std::find(t.targets.begin(), t.targets.end(), p.s) != t.targets.end()) {
      error(p.ptr, "history state '" + c_->states[p.s].id +
                       "' is its parent's initial state and has no 'target': its default would enter itself");
      return;
    }
  } else
    for (const auto& [v, vptr] : one_or_many(*p.target, p.ptr + "/target")) add_history_target(p.s, *v, vptr, t);
  if (t.targets.empty()) return;  // parent errors were reported
  c_->transitions.push_back(std::move(t));
  c_->states[p.s].initial = static_cast<transition_index>(c_->transitions.size() - 1);
}

void xstate_builder::default_history_targets(state_index s, transition_node& t) {
  // XState: the parent's initial state, or the parallel parent itself.
  const auto parent = c_->states[s].parent;
  if (c_->states[parent].kind == state_kind::parallel) {
    t.targets.push_back(parent);
  } else if (c_->states[parent].initial != npos) {
    // XState: the parent's initial transition itself (entering through it runs the parent's
    // `initial` actions); a copy with the parent as its source says so.
    t.targets = c_->transitions[c_->states[parent].initial].targets;
    t.source = parent;
  }
}

void xstate_builder::add_history_target(state_index s, const value& v, const std::string& vptr, transition_node& t) {
  const auto parent = c_->states[s].parent;
  if (!v.is_string()) {
    error(vptr, "a history target must be a string");
    return;
  }
  std::string target(v.as_string());
  auto r = !target.empty() && target[0] == '#' ? by_id(target.substr(1)) : by_path(parent, split_path(target));
  if (r == npos || !c_->is_descendant(r, parent) || c_->states[r].kind == state_kind::history) {
    error(vptr, "history target '" + target + "' is not a state inside '" + c_->states[parent].id + "'");
    return;
  }
  t.targets.push_back(r);
}

void xstate_builder::order_transitions(state_index s) {
  // XState's candidates for an event: the exact descriptor first, then matching wildcards, longest
  // first. An event matches at most one plain descriptor, so one static order serves every event.
  auto& list = c_->states[s].transitions;
  auto rank = [&](transition_index ti) -> std::size_t {
    const auto& t = c_->transitions[ti];
    if (t.any_event) return 1'000'000 - 1;
    if (t.events.empty()) return 0;
    const auto& d = c_->names[t.events[0]];
    bool wild = d.size() >= 2 && d.compare(d.size() - 2, 2, ".*") == 0;
    return wild ? 1'000'000 - d.size() : 0;
  };
  std::stable_sort(list.begin(), list.end(), [&](transition_index a, transition_index b) { return rank(a) < rank(b); });
}

}  // namespace

parse_result parse_xstate(std::string_view text, std::string_view source_name) {
  parse_result r;
  std::string file(source_name);
  boost::json::parse_options depth;
  depth.max_depth = max_xstate_json_depth;  // deeper is a located error, before any recursion
  boost::json::stream_parser p({}, depth);
  boost::system::error_code ec;
  auto n = p.write_some(text.data(), text.size(), ec);
  if (!ec) p.finish(ec);
  if (ec) {
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < n && i < text.size(); ++i) {
      if (text[i] == '\n') ++line, col = 1;
      else ++col;
    }
    r.errors.push_back({file, {static_cast<std::uint32_t>(line), static_cast<std::uint32_t>(col)}, "invalid JSON: " + ec.message()});
    return r;
  }
  value root = p.release();
  detail::finish_parse(r, file, [&] { return xstate_builder(text, file, r.errors).build(root); });
  return r;
}

parse_result load_xstate(const std::filesystem::path& path) {
  return detail::load_file(path, [&](const std::string& text) { return parse_xstate(text, path.string()); });
}

value detail::state_value_at(const statechart& c, state_index s, const void* ctx, bool (*active)(const void*, state_index)) {
  const auto& st = c.states[s];
  auto key = [&](state_index ch) -> const std::string& { return c.states[ch].key.empty() ? c.states[ch].id : c.states[ch].key; };
  if (st.kind == state_kind::parallel) {
    boost::json::object o;
    for (auto ch : st.children) o[key(ch)] = state_value_at(c, ch, ctx, active);
    return o;
  }
  for (auto ch : st.children) {
    if (!active(ctx, ch)) continue;
    if (c.is_atomic(ch)) return value(key(ch));
    return boost::json::object{{key(ch), state_value_at(c, ch, ctx, active)}};
  }
  return boost::json::object{};
}

}  // namespace xsn::inline v0
