// SCXML text -> statechart. Two passes: build the state tree in document order, then resolve
// targets and validate. Every problem becomes a located diagnostic; nothing throws out.
#include <xsn/parse/scxml.hpp>
#include <xsn/parse/xstate.hpp>

#include "detail/css_time.hpp"

#include "parse_detail.hpp"

#include <pugixml.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace xsn::inline v0 {

std::string diagnostic::to_string() const {
  return file + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column) + ": " +
         (level == severity::warning ? "warning: " : "") + message;
}

namespace {

constexpr std::string_view scxml_ns = "http://www.w3.org/2005/07/scxml";
constexpr std::string_view xsn_ns = "http://xsn.dev/scxml";

std::vector<std::string> split_ws(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    auto b = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i > b) out.emplace_back(s.substr(b, i - b));
  }
  return out;
}

}  // namespace

namespace {

/// Removes the unit of CSS time `w` ("ms" or "s") and sets `scale` to milliseconds per unit;
/// false when it has neither.
bool strip_css_unit(std::string_view& w, double& scale) {
  if (w.size() > 2 && w.substr(w.size() - 2) == "ms") {
    scale = 1, w.remove_suffix(2);
  } else if (w.size() > 1 && w.back() == 's') {
    scale = 1000, w.remove_suffix(1);
  } else {
    return false;
  }
  return !w.empty();
}

}  // namespace

bool detail::parse_css_time(std::string_view s, std::chrono::milliseconds& out) {
  auto words = split_ws(s);
  if (words.size() != 1) return false;
  std::string_view w = words[0];
  double scale = 0;
  if (!strip_css_unit(w, scale)) return false;
  std::string num(w);
  if (num.front() == '.') num.insert(num.begin(), '0');
  char* end = nullptr;
  double v = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size() || !std::isfinite(v) || v < 0 || v * scale > 1e15) return false;
  out = std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(v * scale)));
  return true;
}

namespace {

class builder {
 public:
  builder(std::string_view text, std::string file, const parse_options& options, std::vector<diagnostic>& errors)
      : text_(text), file_(std::move(file)), options_(options), base_(options.base_dir), errors_(errors),
        errors_before_(errors.size()) {
    for (std::size_t i = 0; i < text_.size(); ++i)
      if (text_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::shared_ptr<statechart> build_document();
  std::shared_ptr<statechart> build_from(pugi::xml_node root);
  /// The chart as far as it was built, also when it has errors (null when no `<scxml>` was
  /// found); for checks that look at expressions, not at the resolved structure.
  std::shared_ptr<statechart> partial() const { return c_; }

 private:
  // ---- locations and diagnostics ----
  source_location at_offset(std::ptrdiff_t off) const {
    if (off < 0) return {};
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), static_cast<std::size_t>(off));
    auto line = static_cast<std::uint32_t>(it - line_starts_.begin());
    auto col = static_cast<std::uint32_t>(static_cast<std::size_t>(off) - line_starts_[line - 1]);
    return {line, col + 1};
  }
  source_location at(pugi::xml_node n) const {
    auto off = n.offset_debug();
    // offset_debug points at the element name; report the '<' before it.
    return at_offset(off > 0 && n.type() == pugi::node_element ? off - 1 : off);
  }
  /// Where attribute `a` of an element stands (its name), or `fallback` when the parser did not
  /// work in our copy of the text (a document converted from another encoding).
  source_location at(pugi::xml_attribute a, source_location fallback) const {
    const char* p = a.name();
    if (buf_begin_ == nullptr || p < buf_begin_ || p >= buf_begin_ + text_.size()) return fallback;
    return at_offset(p - buf_begin_);
  }
  /// Where attribute `name` of `n` stands; the element's location when it has no such attribute.
  source_location at(pugi::xml_node n, const char* name) const { return at(n.attribute(name), at(n)); }
  /// Collects a diagnostic; beyond `detail::max_collected_errors` the rest are dropped (the
  /// report keeps the first `max_parse_errors` anyway).
  void error(source_location loc, std::string msg) {
    if (errors_.size() < detail::max_collected_errors) errors_.push_back({file_, loc, std::move(msg)});
  }
  void error(pugi::xml_node n, std::string msg) { error(at(n), std::move(msg)); }
  bool failed() const { return errors_.size() > errors_before_; }

  // ---- namespaces ----
  std::string_view local_name(pugi::xml_node n) const {
    std::string_view name = n.name();
    auto colon = name.find(':');
    return colon == std::string_view::npos ? name : name.substr(colon + 1);
  }
  /// The namespace of `n`'s name. Remembered per element and prefix, so that a document costs
  /// one walk up per element and prefix however deep it nests (not one walk to the root each).
  std::string namespace_of(pugi::xml_node n) {
    std::string_view name = n.name();
    auto colon = name.find(':');
    std::string attr = colon == std::string_view::npos ? "xmlns" : "xmlns:" + std::string(name.substr(0, colon));
    auto& known = namespaces_[attr];
    const char* found = colon == std::string_view::npos ? scxml_ns.data() : "";
    std::vector<pugi::xml_node_struct*> walked;
    for (auto p = n; p && p.type() == pugi::node_element; p = p.parent()) {
      if (auto it = known.find(p.internal_object()); it != known.end()) {
        found = it->second;
        break;
      }
      walked.push_back(p.internal_object());
      if (auto a = p.attribute(attr.c_str())) {
        found = a.value();
        break;
      }
    }
    for (auto* w : walked) known.emplace(w, found);
    return found;
  }
  bool is_scxml(pugi::xml_node n) { return n.type() == pugi::node_element && namespace_of(n) == scxml_ns; }

  // ---- attributes ----
  bool has(pugi::xml_node n, const char* a) const { return static_cast<bool>(n.attribute(a)); }
  std::string attr(pugi::xml_node n, const char* a) const { return n.attribute(a).value(); }
  expr_index expr_attr(pugi::xml_node n, const char* a) {
    auto at_ = n.attribute(a);
    if (!at_) return npos;
    return add_expr(at_.value(), at(at_, at(n)));
  }
  expr_index add_expr(std::string text, source_location loc) {
    c_->expressions.push_back({std::move(text), loc});
    return static_cast<expr_index>(c_->expressions.size() - 1);
  }
  void exclusive(pugi::xml_node n, const char* a, const char* b) {
    if (has(n, a) && has(n, b))
      error(at(n, b), "<" + std::string(local_name(n)) + "> may not have both '" + a + "' and '" + b + "'");
  }
  std::uint32_t intern_name(const std::string& n) {
    auto it = names_.find(n);
    if (it != names_.end()) return it->second;
    auto id = static_cast<std::uint32_t>(c_->names.size());
    c_->names.push_back(n);
    names_.emplace(n, id);
    return id;
  }

  struct pending_targets {
    std::vector<std::string> ids;
    source_location loc;
  };
  using action_op = decltype(action::op);

  // ---- the document element ----
  bool check_root(pugi::xml_node root);
  void read_root_attributes(pugi::xml_node root);
  // ---- states ----
  state_index build_state(pugi::xml_node n, state_index parent);
  static state_kind state_kind_of(std::string_view name);
  void read_state_id(pugi::xml_node n, state_node& s);
  void read_history_type(pugi::xml_node n, state_node& s);
  void read_initial_attribute(pugi::xml_node n, state_kind kind, state_index idx);
  /// The kind a state ends with once its children are known, and the checks that need them.
  void finish_state(state_index idx);
  // ---- the children of a state: one function per element, each checks where it stands ----
  void build_child(pugi::xml_node child, state_index idx);
  /// The element that state `idx` was written as, for messages.
  std::string_view element_name(state_index idx) const;
  /// Reports "<child> is not allowed in <parent>" unless `ok`; returns `ok`.
  bool allowed(pugi::xml_node child, state_index idx, bool ok);
  bool is_root(state_index idx) const;
  bool is_state_like(state_index idx) const;
  /// A `<state>` or `<parallel>` (not the root): holds transitions, histories and invokes.
  bool is_inner_container(state_index idx) const;
  void child_state(pugi::xml_node child, state_index idx);
  void child_history(pugi::xml_node child, state_index idx);
  void child_transition(pugi::xml_node child, state_index idx);
  void history_default(pugi::xml_node child, state_index idx);
  void child_initial(pugi::xml_node child, state_index idx);
  void child_actions(pugi::xml_node child, state_index idx);  ///< `<onentry>`, `<onexit>`
  void child_datamodel(pugi::xml_node child, state_index idx);
  void child_invoke(pugi::xml_node child, state_index idx);
  void child_donedata(pugi::xml_node child, state_index idx);
  void child_script(pugi::xml_node child, state_index idx);
  // ---- transitions ----
  void build_transition(pugi::xml_node n, state_index source);
  void read_events(pugi::xml_node n, transition_node& t);
  static bool valid_descriptor(const std::string& tok);
  void read_transition_type(pugi::xml_node n, transition_node& t);
  void build_initial_element(pugi::xml_node n, state_index idx);
  /// The last `<transition>` of `<initial>` `n`; `count` is how many it has.
  pugi::xml_node initial_transition(pugi::xml_node n, int& count);
  // ---- data, content, invoke ----
  void build_data(pugi::xml_node n, state_index owner);
  /// The children of `n` as raw markup.
  static std::string markup_of(pugi::xml_node n);
  void build_invoke(pugi::xml_node n, state_index owner);
  void read_invoke_attributes(pugi::xml_node n, invoke_decl& inv);
  void build_donedata(pugi::xml_node n, state_index owner);
  content build_content(pugi::xml_node n);
  void build_inline_chart(pugi::xml_node scxml, content& c);
  static bool is_content_body(pugi::xml_node ch);
  /// A `<content>` body: the value of a lone text node, else the markup.
  static std::string content_text(pugi::xml_node n);
  param build_param(pugi::xml_node n);
  void read_namelist(pugi::xml_node n, source_location loc, std::vector<expr_index>& exprs,
                     std::vector<std::string>& names);
  /// The `<param>` and `<content>` children of `n` (and `<finalize>` when `finalize` is given);
  /// anything else is an error. Returns how many `<content>` there were.
  int read_params_and_content(pugi::xml_node n, std::vector<param>& params, std::optional<content>& body,
                              action_block* finalize);
  // ---- executable content: one builder per element ----
  action_block build_block(pugi::xml_node parent);
  bool build_action(pugi::xml_node n, action_block& out);
  native_action build_native(pugi::xml_node n);
  action_op build_raise(pugi::xml_node n, source_location loc);
  action_op build_send(pugi::xml_node n, source_location loc);
  void read_send_attributes(pugi::xml_node n, send_action& s);
  action_op build_cancel(pugi::xml_node n, source_location loc);
  action_op build_log(pugi::xml_node n, source_location loc);
  action_op build_assign(pugi::xml_node n, source_location loc);
  action_op build_script(pugi::xml_node n, source_location loc);
  action_op build_if(pugi::xml_node n, source_location loc);
  void add_branch(pugi::xml_node ch, std::string_view name, if_action& a, bool& seen_else);
  action_op build_foreach(pugi::xml_node n, source_location loc);
  /// What the `src` attribute of `n` names, through the resolver; `std::nullopt` when it is
  /// missing (`missing` is set) or refused (an error at the attribute, `missing` is not set).
  std::optional<std::string> load_src(pugi::xml_node n, bool& missing);
  /// Checks what pugixml leaves out of well-formedness (duplicate attributes, a second root
  /// element or text beside the root) and the nesting limits; false when the document is
  /// too deep to be built.
  bool check_tree(pugi::xml_document& doc);
  // ---- second pass ----
  void resolve();
  /// Resolves the ids pending for `t`; an unknown one is "<what> 'id'<of> is not a state id".
  void resolve_targets(transition_index t, std::string_view what, std::string_view of = {});
  void resolve_initial(state_index s);
  /// Adds the default-entry transition of `s` (to `target` unless npos) and returns it.
  transition_index add_initial_transition(state_index s, source_location loc, state_index target);
  void initial_from_attribute(state_index s, const pending_targets& ids);
  void check_initial_targets(state_index s);
  /// Where the targets of `t` are named (its `target` or `initial` attribute), else where it stands.
  source_location target_loc(transition_index t) const {
    auto it = targets_.find(t);
    return it != targets_.end() ? it->second.loc : c_->transitions[t].loc;
  }
  void validate_history(state_index s);
  void check_history_target(const state_node& st, state_index target);

  std::string_view text_;
  std::string file_;
  const parse_options& options_;
  std::filesystem::path base_;
  std::vector<diagnostic>& errors_;
  std::size_t errors_before_;          ///< Errors found before this (sub)document.
  const char* buf_begin_ = nullptr;    ///< Our copy of `text_`, which pugixml parses in place.
  std::vector<std::size_t> line_starts_{0};
  std::shared_ptr<statechart> c_;
  std::unordered_map<std::string, std::uint32_t> names_;
  std::unordered_map<transition_index, pending_targets> targets_;
  std::unordered_map<state_index, pending_targets> initial_attr_;
  std::unordered_map<std::string, source_location> seen_ids_;
  std::unordered_map<std::string, state_index> index_;
  std::uint32_t generated_ = 0;
  /// namespace_of's memory: per `xmlns` / `xmlns:prefix` attribute, each element's namespace.
  std::unordered_map<std::string, std::unordered_map<const pugi::xml_node_struct*, const char*>> namespaces_;
};

std::shared_ptr<statechart> builder::build_document() {
  pugi::xml_document doc;
  // Parsed in place, so that attribute names point into `buf` and have a location.
  std::string buf(text_);
  buf_begin_ = buf.data();
  auto res = doc.load_buffer_inplace(buf.data(), buf.size(), pugi::parse_default | pugi::parse_ws_pcdata_single);
  if (!res) {
    error(at_offset(res.offset), std::string("XML error: ") + res.description());
    return nullptr;
  }
  auto root = doc.document_element();
  if (!root) {
    error(source_location{1, 1}, "document has no root element");
    return nullptr;
  }
  if (!check_tree(doc)) return nullptr;
  return build_from(root);
}

bool builder::check_tree(pugi::xml_document& doc) {
  // pugixml walks the tree without recursion, and so does this.
  struct walker : pugi::xml_tree_walker {
    builder& b;
    std::vector<std::size_t> states_at;  // states_at[d]: state elements among the ancestors-or-self at depth d
    bool too_deep = false;
    bool root_seen = false;
    explicit walker(builder& owner) : b(owner) {}
    bool for_each(pugi::xml_node& n) override {
      const auto d = static_cast<std::size_t>(depth());
      if (d == 0) return top_level(n);
      if (n.type() != pugi::node_element) return true;
      states_at.resize(d + 1);
      states_at[d] = (d > 0 ? states_at[d - 1] : 0) + (is_state(b.local_name(n)) ? 1 : 0);
      if (d + 1 > max_element_depth)
        return deep(n, "elements nested deeper than " + std::to_string(max_element_depth));
      if (states_at[d] > max_state_depth)
        return deep(n, "states nested deeper than " + std::to_string(max_state_depth));
      duplicates(n);
      return true;
    }
    static bool is_state(std::string_view name) {
      return name == "state" || name == "parallel" || name == "final" || name == "history";
    }
    bool top_level(pugi::xml_node& n) {
      if (n.type() == pugi::node_element) {
        if (root_seen) b.error(n, "a second root element <" + std::string(n.name()) + "> (a document has one)");
        root_seen = true;
        states_at.assign(1, 0);
        duplicates(n);
      } else if (n.type() == pugi::node_pcdata || n.type() == pugi::node_cdata) {
        b.error(n, "text outside the root element");
      }
      return true;
    }
    bool deep(pugi::xml_node& n, std::string msg) {
      b.error(n, std::move(msg));
      too_deep = true;
      return false;  // stops the walk: nothing deeper is looked at, and nothing is built
    }
    void duplicates(pugi::xml_node& n) {
      std::unordered_set<std::string_view> seen;
      for (auto a : n.attributes())
        if (!seen.insert(a.name()).second)
          b.error(b.at(a, b.at(n)), "duplicate attribute '" + std::string(a.name()) + "'");
    }
  } w(*this);
  doc.traverse(w);
  return !w.too_deep;
}

std::shared_ptr<statechart> builder::build_from(pugi::xml_node root) {
  if (!check_root(root)) return nullptr;
  c_ = std::make_shared<statechart>();
  c_->source_name = file_;
  c_->base_dir = base_.string();
  c_->name = attr(root, "name");
  read_root_attributes(root);
  build_state(root, npos);
  resolve();  // also after errors: every unknown target and bad initial is reported in one pass
  if (failed()) return nullptr;
  c_->finalize();
  return c_;
}

bool builder::check_root(pugi::xml_node root) {
  if (local_name(root) != "scxml") {
    error(root, "root element must be <scxml>, not <" + std::string(root.name()) + ">");
    return false;
  }
  if (namespace_of(root) != scxml_ns) {
    error(root, "<scxml> must be in namespace " + std::string(scxml_ns));
    return false;
  }
  return true;
}

void builder::read_root_attributes(pugi::xml_node root) {
  if (has(root, "version") && attr(root, "version") != "1.0")
    error(at(root, "version"), "unsupported SCXML version '" + attr(root, "version") + "' (expected 1.0)");
  if (has(root, "datamodel")) c_->datamodel = attr(root, "datamodel");
  if (c_->datamodel != "null" && c_->datamodel != "ecmascript")
    error(at(root, "datamodel"), "unknown datamodel '" + c_->datamodel + "' (supported: null, ecmascript)");
  if (!has(root, "binding")) return;
  auto b = attr(root, "binding");
  if (b == "late") c_->binding = binding_mode::late;
  else if (b != "early") error(at(root, "binding"), "binding must be 'early' or 'late', not '" + b + "'");
}

// ---- states ----

state_index builder::build_state(pugi::xml_node n, state_index parent) {
  auto idx = static_cast<state_index>(c_->states.size());
  c_->states.emplace_back();
  {
    auto& s = c_->states.back();
    s.parent = parent;
    s.loc = at(n);
    s.depth = parent == npos ? 0 : c_->states[parent].depth + 1;
    s.kind = state_kind_of(local_name(n));
    if (parent != npos) read_state_id(n, s);
    if (s.kind == state_kind::history) read_history_type(n, s);
    if (has(n, "initial")) read_initial_attribute(n, s.kind, idx);
  }
  for (auto child : n.children())
    if (child.type() == pugi::node_element) build_child(child, idx);
  finish_state(idx);
  return idx;
}

state_kind builder::state_kind_of(std::string_view name) {
  if (name == "parallel") return state_kind::parallel;
  if (name == "final") return state_kind::final_state;
  if (name == "history") return state_kind::history;
  return state_kind::atomic;  // until it has children
}

void builder::read_state_id(pugi::xml_node n, state_node& s) {
  if (!has(n, "id")) {
    s.id = "__xsn_" + std::to_string(++generated_);
    return;
  }
  s.id = attr(n, "id");
  s.explicit_id = true;
  if (s.id.empty() || std::any_of(s.id.begin(), s.id.end(), [](char ch) { return std::isspace(static_cast<unsigned char>(ch)); }))
    error(at(n, "id"), "invalid state id '" + s.id + "'");
  auto [it, fresh] = seen_ids_.emplace(s.id, s.loc);
  if (!fresh)
    error(at(n, "id"), "duplicate state id '" + s.id + "' (first defined at line " + std::to_string(it->second.line) + ")");
}

void builder::read_history_type(pugi::xml_node n, state_node& s) {
  auto type = has(n, "type") ? attr(n, "type") : "shallow";
  if (type == "shallow") s.history = history_kind::shallow;
  else if (type == "deep") s.history = history_kind::deep;
  else error(at(n, "type"), "history type must be 'shallow' or 'deep', not '" + type + "'");
}

void builder::read_initial_attribute(pugi::xml_node n, state_kind kind, state_index idx) {
  if (kind == state_kind::parallel || kind == state_kind::final_state || kind == state_kind::history)
    error(at(n, "initial"), "'initial' is not allowed on <" + std::string(local_name(n)) + ">");
  else if (auto ids = split_ws(attr(n, "initial")); ids.empty())
    error(at(n, "initial"), "empty 'initial' attribute");
  else
    initial_attr_[idx] = {std::move(ids), at(n, "initial")};
}

void builder::finish_state(state_index idx) {
  auto& s = c_->states[idx];
  s.subtree_end = static_cast<state_index>(c_->states.size());
  if (s.parent == npos) {
    s.kind = state_kind::compound;
    if (s.children.empty()) error(s.loc, "<scxml> must contain at least one state");
    return;
  }
  if (s.kind != state_kind::atomic) return;
  if (!s.children.empty()) {
    s.kind = state_kind::compound;
    return;
  }
  if (initial_attr_.count(idx))
    error(initial_attr_[idx].loc, "atomic state '" + s.id + "' may not have an 'initial' attribute");
  if (s.initial != npos) error(s.loc, "atomic state '" + s.id + "' may not have an <initial> element");
}

// ---- the children of a state: each kind checks where it stands, then builds ----

void builder::build_child(pugi::xml_node child, state_index idx) {
  if (!is_scxml(child)) return;  // foreign elements are extensions: ignored
  using child_builder = void (builder::*)(pugi::xml_node, state_index);
  static constexpr std::pair<std::string_view, child_builder> kinds[] = {
      {"state", &builder::child_state},        {"parallel", &builder::child_state},
      {"final", &builder::child_state},        {"history", &builder::child_history},
      {"transition", &builder::child_transition}, {"initial", &builder::child_initial},
      {"onentry", &builder::child_actions},    {"onexit", &builder::child_actions},
      {"datamodel", &builder::child_datamodel}, {"invoke", &builder::child_invoke},
      {"donedata", &builder::child_donedata},  {"script", &builder::child_script},
  };
  const auto name = local_name(child);
  for (const auto& [kind, build] : kinds)
    if (kind == name) return (this->*build)(child, idx);
  error(child, "unknown element <" + std::string(child.name()) + ">");
}

std::string_view builder::element_name(state_index idx) const {
  if (c_->states[idx].parent == npos) return "scxml";
  switch (c_->states[idx].kind) {
    case state_kind::parallel: return "parallel";
    case state_kind::final_state: return "final";
    case state_kind::history: return "history";
    default: return "state";
  }
}

bool builder::allowed(pugi::xml_node child, state_index idx, bool ok) {
  if (!ok) error(child, "<" + std::string(local_name(child)) + "> is not allowed in <" + std::string(element_name(idx)) + ">");
  return ok;
}

bool builder::is_root(state_index idx) const { return c_->states[idx].parent == npos; }

bool builder::is_state_like(state_index idx) const {
  const auto kind = c_->states[idx].kind;
  return kind == state_kind::atomic || kind == state_kind::compound;
}

bool builder::is_inner_container(state_index idx) const {
  return !is_root(idx) && (is_state_like(idx) || c_->states[idx].kind == state_kind::parallel);
}

void builder::child_state(pugi::xml_node child, state_index idx) {
  if (!allowed(child, idx, is_root(idx) || is_inner_container(idx))) return;
  auto ch = build_state(child, idx);
  c_->states[idx].children.push_back(ch);
}

void builder::child_history(pugi::xml_node child, state_index idx) {
  if (!allowed(child, idx, is_inner_container(idx))) return;
  auto ch = build_state(child, idx);
  c_->states[idx].histories.push_back(ch);
}

void builder::child_transition(pugi::xml_node child, state_index idx) {
  if (c_->states[idx].kind == state_kind::history) return history_default(child, idx);
  if (!allowed(child, idx, is_inner_container(idx))) return;
  build_transition(child, idx);
  c_->states[idx].transitions.push_back(static_cast<transition_index>(c_->transitions.size() - 1));
}

void builder::history_default(pugi::xml_node child, state_index idx) {
  if (c_->states[idx].initial != npos) error(child, "<history> may have only one <transition>");
  build_transition(child, idx);
  c_->states[idx].initial = static_cast<transition_index>(c_->transitions.size() - 1);
  if (has(child, "event") || has(child, "cond"))
    error(child, "the default transition of <history> may not have 'event' or 'cond'");
}

void builder::child_initial(pugi::xml_node child, state_index idx) {
  if (!allowed(child, idx, !is_root(idx) && is_state_like(idx))) return;
  build_initial_element(child, idx);
}

void builder::child_actions(pugi::xml_node child, state_index idx) {
  if (!allowed(child, idx, !is_root(idx) && c_->states[idx].kind != state_kind::history)) return;
  auto block = build_block(child);
  auto& s = c_->states[idx];
  (local_name(child) == "onentry" ? s.onentry : s.onexit).push_back(std::move(block));
}

void builder::child_datamodel(pugi::xml_node child, state_index idx) {
  if (!allowed(child, idx, c_->states[idx].kind != state_kind::history)) return;
  for (auto d : child.children()) {
    if (d.type() != pugi::node_element || !is_scxml(d)) continue;
    if (local_name(d) != "data") {
      error(d, "<" + std::string(local_name(d)) + "> is not allowed in <datamodel>");
      continue;
    }
    build_data(d, idx);
  }
}

void builder::child_invoke(pugi::xml_node child, state_index idx) {
  if (!allowed(child, idx, is_inner_container(idx))) return;
  build_invoke(child, idx);
}

void builder::child_donedata(pugi::xml_node child, state_index idx) {
  if (!allowed(child, idx, c_->states[idx].kind == state_kind::final_state)) return;
  build_donedata(child, idx);
}

void builder::child_script(pugi::xml_node child, state_index idx) {
  if (!allowed(child, idx, is_root(idx))) return;
  auto block_holder = action_block{};
  build_action(child, block_holder);
  for (auto& a : block_holder) c_->root_scripts.push_back(std::move(a));
}

// ---- transitions ----

void builder::build_transition(pugi::xml_node n, state_index source) {
  transition_node t;
  t.source = source;
  t.loc = at(n);
  if (has(n, "event")) read_events(n, t);
  t.cond = expr_attr(n, "cond");
  if (has(n, "type")) read_transition_type(n, t);
  t.body = build_block(n);
  auto ti = static_cast<transition_index>(c_->transitions.size());
  if (has(n, "target")) {
    auto ids = split_ws(attr(n, "target"));
    if (ids.empty()) error(at(n, "target"), "empty 'target' attribute");
    targets_[ti] = {std::move(ids), at(n, "target")};
  }
  c_->transitions.push_back(std::move(t));
}

void builder::read_events(pugi::xml_node n, transition_node& t) {
  auto tokens = split_ws(attr(n, "event"));
  if (tokens.empty()) error(at(n, "event"), "empty 'event' attribute");
  for (auto tok : tokens) {
    if (tok == "*" || tok == ".*") {
      t.any_event = true;
      continue;
    }
    if (tok.size() >= 2 && tok.substr(tok.size() - 2) == ".*") tok.resize(tok.size() - 2);
    else if (tok.back() == '.') tok.pop_back();
    if (valid_descriptor(tok)) t.events.push_back(intern_name(tok));
    else error(at(n, "event"), "invalid event descriptor '" + tok + "'");
  }
}

bool builder::valid_descriptor(const std::string& tok) {
  return !tok.empty() && tok.front() != '.' && tok.find("..") == std::string::npos && tok.find('*') == std::string::npos;
}

void builder::read_transition_type(pugi::xml_node n, transition_node& t) {
  auto type = attr(n, "type");
  if (type == "internal") t.internal = true;
  else if (type != "external") error(at(n, "type"), "transition type must be 'internal' or 'external', not '" + type + "'");
}

void builder::build_initial_element(pugi::xml_node n, state_index idx) {
  if (c_->states[idx].initial != npos || initial_attr_.count(idx)) {
    error(n, "state '" + c_->states[idx].id + "' has both an 'initial' attribute and an <initial> element, or two <initial>");
    return;
  }
  int count = 0;
  auto tr = initial_transition(n, count);
  if (count != 1) {
    error(n, "<initial> must contain exactly one <transition>");
    return;
  }
  if (has(tr, "event") || has(tr, "cond")) error(tr, "the <initial> transition may not have 'event' or 'cond'");
  if (!has(tr, "target")) error(tr, "the <initial> transition must have a 'target'");
  build_transition(tr, idx);
  c_->states[idx].initial = static_cast<transition_index>(c_->transitions.size() - 1);
}

pugi::xml_node builder::initial_transition(pugi::xml_node n, int& count) {
  pugi::xml_node tr;
  for (auto ch : n.children()) {
    if (!is_scxml(ch)) continue;
    if (local_name(ch) != "transition") {
      error(ch, "<" + std::string(local_name(ch)) + "> is not allowed in <initial>");
      continue;
    }
    tr = ch;
    ++count;
  }
  return tr;
}

// ---- data, content, invoke ----

std::optional<std::string> builder::load_src(pugi::xml_node n, bool& missing) {
  missing = false;
  const auto src = attr(n, "src");
  const auto max = options_.max_resource_size;
  auto r = options_.resolver ? options_.resolver(src, base_, max) : read_local_resource(src, base_, max);
  const auto where = at(n, "src");
  const auto what = "<" + std::string(local_name(n)) + " src='" + src + "'>";
  switch (r.status) {
    case resource::outcome::found:
      if (r.content.size() <= max) return std::move(r.content);
      error(where, what + " refused: larger than " + std::to_string(max) + " bytes");
      return std::nullopt;
    case resource::outcome::missing:
      missing = true;
      return std::nullopt;
    case resource::outcome::refused:
      error(where, what + " refused: " + (r.reason.empty() ? std::string("not allowed") : r.reason));
      return std::nullopt;
  }
  return std::nullopt;
}

void builder::build_data(pugi::xml_node n, state_index owner) {
  data_decl d;
  d.loc = at(n);
  if (!has(n, "id") || attr(n, "id").empty()) error(n, "<data> must have an 'id'");
  d.id = attr(n, "id");
  exclusive(n, "expr", "src");
  d.expr = expr_attr(n, "expr");
  bool has_body = !n.first_child().empty();
  if (has_body && (has(n, "expr") || has(n, "src")))
    error(n, "<data> may have only one of 'expr', 'src' and content");
  if (has(n, "src")) {
    bool missing = false;
    d.text = load_src(n, missing);
    if (missing) d.src_error = "cannot read data src '" + attr(n, "src") + "'";
  } else if (has_body) {
    d.text = markup_of(n);
  }
  c_->data.push_back(std::move(d));
  c_->states[owner].data.push_back(static_cast<std::uint32_t>(c_->data.size() - 1));
}

std::string builder::markup_of(pugi::xml_node n) {
  std::ostringstream ss;
  for (auto ch : n.children()) ch.print(ss, "", pugi::format_raw);
  return ss.str();
}

param builder::build_param(pugi::xml_node n) {
  param p;
  if (!has(n, "name")) error(n, "<param> must have a 'name'");
  p.name = attr(n, "name");
  exclusive(n, "expr", "location");
  if (!has(n, "expr") && !has(n, "location")) error(n, "<param> must have 'expr' or 'location'");
  p.expr = expr_attr(n, "expr");
  p.location = expr_attr(n, "location");
  return p;
}

content builder::build_content(pugi::xml_node n) {
  content c;
  c.expr = expr_attr(n, "expr");
  bool has_body = false;
  for (auto ch : n.children()) {
    if (ch.type() == pugi::node_element && local_name(ch) == "scxml" && namespace_of(ch) == scxml_ns)
      build_inline_chart(ch, c);
    has_body = has_body || is_content_body(ch);
  }
  if (has_body && c.expr != npos) error(n, "<content> may not have both 'expr' and a body");
  if (has_body) c.text = content_text(n);  // the markup is kept even for an inline chart: `<assign>` stores it as text
  return c;
}

void builder::build_inline_chart(pugi::xml_node scxml, content& c) {
  builder sub(text_, file_, options_, errors_);
  sub.buf_begin_ = buf_begin_;
  auto chart = sub.build_from(scxml);
  if (!chart) return;
  c_->inline_charts.push_back(std::move(chart));
  c.chart = static_cast<std::uint32_t>(c_->inline_charts.size() - 1);
}

bool builder::is_content_body(pugi::xml_node ch) {
  return ch.type() == pugi::node_element || (ch.type() == pugi::node_pcdata && !std::string_view(ch.value()).empty()) ||
         ch.type() == pugi::node_cdata;
}

std::string builder::content_text(pugi::xml_node n) {
  auto only = n.first_child();
  if (only == n.last_child() && (only.type() == pugi::node_pcdata || only.type() == pugi::node_cdata)) return only.value();
  return markup_of(n);
}

void builder::read_namelist(pugi::xml_node n, source_location loc, std::vector<expr_index>& exprs,
                            std::vector<std::string>& names) {
  for (auto& location : split_ws(attr(n, "namelist"))) {
    exprs.push_back(add_expr(location, loc));
    names.push_back(location);
  }
}

int builder::read_params_and_content(pugi::xml_node n, std::vector<param>& params, std::optional<content>& body,
                                     action_block* finalize) {
  int contents = 0;
  for (auto ch : n.children()) {
    if (!is_scxml(ch)) continue;
    auto name = local_name(ch);
    if (name == "param") params.push_back(build_param(ch));
    else if (name == "content") body = build_content(ch), ++contents;
    else if (name == "finalize" && finalize != nullptr) *finalize = build_block(ch);
    else error(ch, "<" + std::string(name) + "> is not allowed in <" + std::string(local_name(n)) + ">");
  }
  return contents;
}

void builder::build_invoke(pugi::xml_node n, state_index owner) {
  invoke_decl inv;
  inv.loc = at(n);
  inv.parent = owner;
  read_invoke_attributes(n, inv);
  read_namelist(n, inv.loc, inv.namelist, inv.namelist_names);
  const int contents = read_params_and_content(n, inv.params, inv.body, &inv.finalize);
  if (contents > 1) error(n, "<invoke> may have at most one <content>");
  if (inv.body && (has(n, "src") || has(n, "srcexpr"))) error(n, "<invoke> may not have both 'src' and <content>");
  if (!inv.namelist.empty() && !inv.params.empty()) error(n, "<invoke> may not have both 'namelist' and <param>");
  c_->invokes.push_back(std::move(inv));
  c_->states[owner].invokes.push_back(static_cast<std::uint32_t>(c_->invokes.size() - 1));
}

void builder::read_invoke_attributes(pugi::xml_node n, invoke_decl& inv) {
  exclusive(n, "type", "typeexpr");
  exclusive(n, "src", "srcexpr");
  exclusive(n, "id", "idlocation");
  if (has(n, "type")) inv.type = attr(n, "type");
  inv.typeexpr = expr_attr(n, "typeexpr");
  inv.src = attr(n, "src");
  inv.srcexpr = expr_attr(n, "srcexpr");
  inv.id = attr(n, "id");
  inv.idlocation = expr_attr(n, "idlocation");
  if (!has(n, "autoforward")) return;
  auto a = attr(n, "autoforward");
  if (a == "true") inv.autoforward = true;
  else if (a != "false") error(at(n, "autoforward"), "autoforward must be 'true' or 'false'");
}

void builder::build_donedata(pugi::xml_node n, state_index owner) {
  donedata d;
  read_params_and_content(n, d.params, d.body, nullptr);
  if (d.body && !d.params.empty()) error(n, "<donedata> may not have both <content> and <param>");
  c_->states[owner].done = std::move(d);
}

// ---- executable content: one builder per element ----

action_block builder::build_block(pugi::xml_node parent) {
  action_block out;
  for (auto ch : parent.children()) {
    if (ch.type() != pugi::node_element) continue;
    build_action(ch, out);
  }
  return out;
}

bool builder::build_action(pugi::xml_node n, action_block& out) {
  auto ns = namespace_of(n);
  auto name = local_name(n);
  auto loc = at(n);
  if (ns == xsn_ns && name == "action") {
    out.push_back({build_native(n), loc});
    return true;
  }
  if (ns != scxml_ns) return false;  // other namespaces: ignored extensions
  using action_builder = action_op (builder::*)(pugi::xml_node, source_location);
  static constexpr std::pair<std::string_view, action_builder> kinds[] = {
      {"raise", &builder::build_raise}, {"send", &builder::build_send},     {"cancel", &builder::build_cancel},
      {"log", &builder::build_log},     {"assign", &builder::build_assign}, {"script", &builder::build_script},
      {"if", &builder::build_if},       {"foreach", &builder::build_foreach},
  };
  for (const auto& [kind, build] : kinds) {
    if (kind != name) continue;
    out.push_back({(this->*build)(n, loc), loc});
    return true;
  }
  error(n, "unknown executable content <" + std::string(n.name()) + ">");
  return false;
}

native_action builder::build_native(pugi::xml_node n) {
  if (!has(n, "name")) error(n, "<xsn:action> must have a 'name'");
  native_action a{attr(n, "name"), npos};
  auto& names = c_->native_actions;
  auto it = std::find(names.begin(), names.end(), a.name);
  a.slot = static_cast<std::uint32_t>(it - names.begin());
  if (it == names.end()) names.push_back(a.name);
  return a;
}

builder::action_op builder::build_raise(pugi::xml_node n, source_location) {
  if (!has(n, "event") || attr(n, "event").empty()) error(n, "<raise> must have an 'event'");
  return raise_action{attr(n, "event")};
}

builder::action_op builder::build_send(pugi::xml_node n, source_location) {
  send_action s;
  read_send_attributes(n, s);
  read_namelist(n, at(n), s.namelist, s.namelist_names);
  const int contents = read_params_and_content(n, s.params, s.body, nullptr);
  if (contents > 1) error(n, "<send> may have at most one <content>");
  if (s.body && (!s.params.empty() || !s.namelist.empty()))
    error(n, "<send> may not have <content> together with 'namelist' or <param>");
  if (!has(n, "event") && !has(n, "eventexpr") && !s.body)
    error(n, "<send> must have 'event', 'eventexpr' or <content>");
  return s;
}

void builder::read_send_attributes(pugi::xml_node n, send_action& s) {
  exclusive(n, "event", "eventexpr");
  exclusive(n, "target", "targetexpr");
  exclusive(n, "type", "typeexpr");
  exclusive(n, "id", "idlocation");
  exclusive(n, "delay", "delayexpr");
  s.event = attr(n, "event");
  s.eventexpr = expr_attr(n, "eventexpr");
  s.target = attr(n, "target");
  s.targetexpr = expr_attr(n, "targetexpr");
  s.type = attr(n, "type");
  s.typeexpr = expr_attr(n, "typeexpr");
  s.id = attr(n, "id");
  s.idlocation = expr_attr(n, "idlocation");
  if (has(n, "delay") && !detail::parse_css_time(attr(n, "delay"), s.delay))
    error(at(n, "delay"), "invalid delay '" + attr(n, "delay") + "' (expected e.g. '500ms' or '1.5s')");
  s.delayexpr = expr_attr(n, "delayexpr");
  if ((has(n, "delay") || has(n, "delayexpr")) && s.target == "#_internal")
    error(n, "<send> to #_internal may not have a delay");
}

builder::action_op builder::build_cancel(pugi::xml_node n, source_location) {
  exclusive(n, "sendid", "sendidexpr");
  if (!has(n, "sendid") && !has(n, "sendidexpr")) error(n, "<cancel> must have 'sendid' or 'sendidexpr'");
  return cancel_action{attr(n, "sendid"), expr_attr(n, "sendidexpr")};
}

builder::action_op builder::build_log(pugi::xml_node n, source_location) {
  return log_action{attr(n, "label"), expr_attr(n, "expr")};
}

builder::action_op builder::build_assign(pugi::xml_node n, source_location) {
  if (!has(n, "location")) error(n, "<assign> must have a 'location'");
  assign_action a{expr_attr(n, "location"), expr_attr(n, "expr"), std::nullopt};
  if (!n.first_child().empty()) {
    if (has(n, "expr")) error(n, "<assign> may not have both 'expr' and content");
    a.body = build_content(n);
  } else if (!has(n, "expr")) {
    error(n, "<assign> must have 'expr' or content");
  }
  return a;
}

builder::action_op builder::build_script(pugi::xml_node n, source_location loc) {
  std::string body;
  if (has(n, "src")) {
    if (!n.first_child().empty()) error(n, "<script> may not have both 'src' and content");
    bool missing = false;
    body = load_src(n, missing).value_or(std::string());
    if (missing) error(at(n, "src"), "cannot read script src '" + attr(n, "src") + "'");
  } else {
    body = n.child_value();
  }
  return script_action{add_expr(std::move(body), loc)};
}

builder::action_op builder::build_if(pugi::xml_node n, source_location) {
  if_action a;
  if (!has(n, "cond")) error(n, "<if> must have a 'cond'");
  a.branches.push_back({expr_attr(n, "cond"), {}});
  bool seen_else = false;
  for (auto ch : n.children()) {
    if (ch.type() != pugi::node_element) continue;
    auto name = is_scxml(ch) ? local_name(ch) : std::string_view{};
    if (name == "elseif" || name == "else") add_branch(ch, name, a, seen_else);
    else build_action(ch, a.branches.back().body);
  }
  return a;
}

void builder::add_branch(pugi::xml_node ch, std::string_view name, if_action& a, bool& seen_else) {
  if (seen_else) error(ch, "<" + std::string(name) + "> after <else>");
  if (name == "else") seen_else = true;
  if (name == "elseif" && !has(ch, "cond")) error(ch, "<elseif> must have a 'cond'");
  a.branches.push_back({name == "elseif" ? expr_attr(ch, "cond") : npos, {}});
}

builder::action_op builder::build_foreach(pugi::xml_node n, source_location) {
  if (!has(n, "array")) error(n, "<foreach> must have an 'array'");
  if (!has(n, "item")) error(n, "<foreach> must have an 'item'");
  return foreach_action{expr_attr(n, "array"), expr_attr(n, "item"), expr_attr(n, "index"), build_block(n)};
}

// ---- second pass ----

void builder::resolve() {
  for (state_index i = 1; i < c_->states.size(); ++i)
    if (c_->states[i].explicit_id) index_.emplace(c_->states[i].id, i);
  for (auto& [t, pending] : targets_) resolve_targets(t, "transition target");
  for (state_index s = 0; s < c_->states.size(); ++s) {
    if (c_->states[s].kind == state_kind::history) validate_history(s);
    else resolve_initial(s);
  }
}

void builder::resolve_targets(transition_index t, std::string_view what, std::string_view of) {
  auto& p = targets_[t];
  auto& tr = c_->transitions[t];
  for (auto& id : p.ids) {
    auto it = seen_ids_.find(id);
    if (it == seen_ids_.end()) {
      error(p.loc, std::string(what) + " '" + id + "'" + std::string(of) + " is not a state id");
      continue;
    }
    tr.targets.push_back(index_.at(id));
  }
}

void builder::resolve_initial(state_index s) {
  auto& st = c_->states[s];
  if (st.kind != state_kind::compound || st.children.empty()) return;  // childless <scxml>: reported
  if (auto it = initial_attr_.find(s); it != initial_attr_.end()) initial_from_attribute(s, it->second);
  else if (st.initial == npos) add_initial_transition(s, st.loc, st.children.front());
  check_initial_targets(s);
}

transition_index builder::add_initial_transition(state_index s, source_location loc, state_index target) {
  transition_node t;
  t.source = s;
  t.loc = loc;
  if (target != npos) t.targets.push_back(target);
  c_->transitions.push_back(std::move(t));
  c_->states[s].initial = static_cast<transition_index>(c_->transitions.size() - 1);
  return c_->states[s].initial;
}

void builder::initial_from_attribute(state_index s, const pending_targets& ids) {
  auto ti = add_initial_transition(s, ids.loc, npos);
  targets_[ti] = ids;
  resolve_targets(ti, "initial state", s == 0 ? std::string(" of the document (<scxml initial>)")
                                              : " of state '" + c_->states[s].id + "'");
}

void builder::check_initial_targets(state_index s) {
  const auto ti = c_->states[s].initial;
  const auto& tr = c_->transitions[ti];
  if (tr.targets.empty() && !failed()) error(tr.loc, "initial transition of '" + c_->states[s].id + "' has no target");
  for (auto target : tr.targets)
    if (!c_->is_descendant(target, s))
      error(target_loc(ti), "initial target '" + c_->states[target].id + "' is not a descendant of '" +
                        (s == 0 ? std::string("scxml") : c_->states[s].id) + "'");
}

void builder::validate_history(state_index s) {
  const auto& st = c_->states[s];
  if (!st.children.empty()) error(st.loc, "<history> may not contain states");
  if (st.initial == npos) {
    error(st.loc, "<history> '" + st.id + "' must have a default <transition>");
    return;
  }
  const auto& tr = c_->transitions[st.initial];
  if (tr.targets.empty() && !targets_.count(st.initial))  // unknown ids were reported already
    error(tr.loc, "the default transition of history '" + st.id + "' must have a target");
  for (auto target : tr.targets) check_history_target(st, target);
}

void builder::check_history_target(const state_node& st, state_index target) {
  bool ok = st.history == history_kind::deep ? c_->is_descendant(target, st.parent)
                                            : c_->states[target].parent == st.parent;
  if (!ok || c_->states[target].kind == state_kind::history)
    error(target_loc(st.initial), "history default target '" + c_->states[target].id + "' must be a " +
                      (st.history == history_kind::deep ? "descendant" : "child") + " of '" +
                      c_->states[st.parent].id + "'");
}

}  // namespace

namespace {

namespace fs = std::filesystem;

/// True when `p` is `dir` or lies under it (both absolute and normalised).
bool inside(const fs::path& p, const fs::path& dir) {
  auto d = dir.begin(), e = dir.end();
  auto q = p.begin();
  for (; d != e; ++d, ++q) {
    if (d->empty()) continue;  // a trailing separator
    if (q == p.end() || *q != *d) return false;
  }
  return true;
}

/// Marks `r` refused for `why`; returns false, so that callers can `return refuse(...)`.
bool refuse(resource& r, std::string why) {
  r.status = resource::outcome::refused;
  r.reason = std::move(why);
  return false;
}

/// True when `path` begins with a URL scheme: two or more letters, digits, '+', '-' or '.'
/// before `colon` (one letter is a drive).
bool has_scheme(const std::string& path, std::size_t colon) {
  return colon != std::string::npos && colon >= 2 &&
         std::all_of(path.begin(), path.begin() + static_cast<std::ptrdiff_t>(colon), [](char ch) {
           return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '+' || ch == '-' || ch == '.';
         });
}

/// The file path `src` names (the path of a `file:` URL, else `src` itself); false with `r`
/// refused when it is a URL of another scheme, empty, or holds a NUL.
bool local_path(std::string_view src, std::string& path, resource& r) {
  path = std::string(src);
  if (path.rfind("file://", 0) == 0) path = path.substr(7);
  else if (path.rfind("file:", 0) == 0) path = path.substr(5);
  else if (auto colon = path.find(':'); has_scheme(path, colon))
    return refuse(r, "only local files are read (not '" + path.substr(0, colon) + ":' URLs)");
  if (path.empty()) return refuse(r, "empty path");
  if (path.find('\0') != std::string::npos) return refuse(r, "a NUL in the path");
  return true;
}

/// `path` (relative to `base_dir`) with links and `..` resolved, when it exists inside the
/// folder; false otherwise, with `r` refused, or missing with a reason.
bool locate_inside(const std::string& path, const fs::path& base_dir, fs::path& real, resource& r) {
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(fs::absolute(base_dir.empty() ? fs::path(".") : base_dir, ec), ec);
  if (ec) return refuse(r, "the document's folder cannot be resolved: " + ec.message());
  fs::path p(path);
  if (p.is_relative()) p = base / p;
  if (!fs::exists(p, ec)) {
    r.reason = "no such file";
    return false;  // missing
  }
  real = fs::canonical(p, ec);  // symbolic links and `..` resolved
  if (ec) return refuse(r, "cannot resolve the path: " + ec.message());
  if (!inside(real, base)) return refuse(r, "outside the document's folder " + base.string());
  return true;
}

/// Reads regular file `real` into `r` when it holds at most `max_size` bytes.
void read_bounded(const fs::path& real, std::size_t max_size, resource& r) {
  std::error_code ec;
  const auto st = fs::status(real, ec);
  if (ec || !fs::is_regular_file(st)) return void(refuse(r, "not a regular file"));
  const auto size = fs::file_size(real, ec);
  if (ec) return void(refuse(r, "cannot read its size: " + ec.message()));
  if (size > max_size) return void(refuse(r, "larger than " + std::to_string(max_size) + " bytes"));
  std::ifstream in(real, std::ios::binary);
  if (!in) {
    r.reason = "cannot be opened";
    return;  // missing, for the datamodel: as if it were not there
  }
  // At most one byte more than allowed, whatever the file became since its size was read.
  r.content.resize(static_cast<std::size_t>(size) + 1);
  in.read(r.content.data(), static_cast<std::streamsize>(r.content.size()));
  r.content.resize(static_cast<std::size_t>(in.gcount()));
  if (r.content.size() > max_size) return void(refuse(r, "larger than " + std::to_string(max_size) + " bytes"));
  r.status = resource::outcome::found;
}

}  // namespace

resource read_local_resource(std::string_view src, const std::filesystem::path& base_dir, std::size_t max_size) {
  resource r;
  std::string path;
  fs::path real;
  if (local_path(src, path, r) && locate_inside(path, base_dir, real, r)) read_bounded(real, max_size, r);
  return r;
}

parse_result detail::parse_scxml_partial(std::string_view text, std::string_view source_name,
                                         const parse_options& options,
                                         std::shared_ptr<const statechart>* partial) {
  parse_result r;
  const std::string file(source_name);
  detail::finish_parse(r, file, [&] {
    builder b(text, file, options, r.errors);
    auto chart = b.build_document();
    if (partial != nullptr) *partial = b.partial();
    return chart;
  });
  return r;
}

parse_result parse_scxml(std::string_view text, std::string_view source_name, const parse_options& options) {
  return detail::parse_scxml_partial(text, source_name, options, nullptr);
}

parse_result parse_scxml(std::string_view text, std::string_view source_name, const std::filesystem::path& base_dir) {
  parse_options options;
  options.base_dir = base_dir;
  return parse_scxml(text, source_name, options);
}

parse_result load_scxml(const std::filesystem::path& path, const parse_options& options) {
  return detail::load_file(path, [&](const std::string& text) {
    if (!options.base_dir.empty()) return parse_scxml(text, path.string(), options);
    auto with_dir = options;
    with_dir.base_dir = path.parent_path();
    return parse_scxml(text, path.string(), with_dir);
  });
}

parse_result load_scxml(const std::filesystem::path& path) { return load_scxml(path, parse_options{}); }

parse_result load_document(const std::filesystem::path& path) {
  if (path.extension() == ".json") return load_xstate(path);
  return load_scxml(path);
}

}  // namespace xsn::inline v0
