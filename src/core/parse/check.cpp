// What `xsn validate` checks beyond loading: ECMAScript compiled (never run), In() ids, what the
// null datamodel cannot evaluate, native action names. Walks the model, which knows for every
// expression the element and attribute it came from and how the datamodel will use it.
#include <xsn/parse/check.hpp>
#include <xsn/parse/xstate.hpp>

#include "datamodel/ecmascript_check.hpp"
#include "datamodel/null_datamodel.hpp"
#include "parse_detail.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_set>

namespace xsn::inline v0 {
namespace {

using detail::script_kind;

/// Longest excerpt of an expression quoted in a message.
constexpr std::size_t max_quote = 60;

std::string quote(std::string_view text) {
  std::string out;
  for (char ch : text) {
    if (out.size() >= max_quote) return out + "...";
    out += ch == '\n' || ch == '\r' || ch == '\t' ? ' ' : ch;
  }
  return out;
}

bool ident_char(char ch) {
  return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_' || ch == '$' ||
         static_cast<unsigned char>(ch) >= 0x80;
}

std::size_t skip_space(std::string_view text, std::size_t i) {
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) ++i;
  return i;
}

/// True when `text[i]` is there and is `ch`.
bool char_at(std::string_view text, std::size_t i, char ch) { return i < text.size() && text[i] == ch; }

/// When a comment starts at `i`, the index after it (a line comment: its newline); else `i`.
std::size_t skip_comment(std::string_view text, std::size_t i) {
  if (!char_at(text, i, '/')) return i;
  if (char_at(text, i + 1, '/')) {
    while (i < text.size() && text[i] != '\n') ++i;
    return i;
  }
  if (!char_at(text, i + 1, '*')) return i;
  auto end = text.find("*/", i + 2);
  return end == std::string_view::npos ? text.size() : end + 2;
}

/// `text[i]` opens a string or template literal; the index after its closing quote.
std::size_t skip_quoted(std::string_view text, std::size_t i) {
  const char q = text[i];
  for (++i; i < text.size() && text[i] != q; ++i)
    if (text[i] == '\\') ++i;
  return i + 1;
}

/// From `s`, the index of quote `q` that closes a plain literal, or where a backslash, a newline
/// or the end of the text stops it.
std::size_t plain_literal_end(std::string_view text, std::size_t s, char q) {
  std::size_t e = s;
  while (e < text.size() && text[e] != q && text[e] != '\\' && text[e] != '\n') ++e;
  return e;
}

/// After the name `In` at `i`: the id of a call `('id')` or `("id")` with a plain literal.
std::optional<std::string_view> in_call_literal(std::string_view text, std::size_t i) {
  std::size_t j = skip_space(text, i);
  if (!char_at(text, j, '(')) return std::nullopt;
  j = skip_space(text, j + 1);
  if (!char_at(text, j, '\'') && !char_at(text, j, '"')) return std::nullopt;
  const char q = text[j];
  const std::size_t s = j + 1;
  const std::size_t e = plain_literal_end(text, s, q);
  if (!char_at(text, e, q) || !char_at(text, skip_space(text, e + 1), ')')) return std::nullopt;
  return text.substr(s, e - s);
}

/// Reads the identifier at `i` and returns the index after it; when it is `In` called with a
/// literal (and not a member `.In`, `prev` being the character before), adds the id to `out`.
std::size_t read_identifier(std::string_view text, std::size_t i, char prev, std::vector<std::string>& out) {
  const std::size_t b = i;
  while (i < text.size() && ident_char(text[i])) ++i;
  if (text.substr(b, i - b) == "In" && prev != '.')
    if (auto id = in_call_literal(text, i)) out.emplace_back(*id);
  return i;
}

/// The literal ids of the `In('id')` / `In("id")` calls in ECMAScript `text`, outside strings
/// and comments. Ids with escapes are left out: only plain literals are checked.
std::vector<std::string> in_literals(std::string_view text) {
  std::vector<std::string> out;
  std::size_t i = 0;
  char prev = 0;  // last significant character before the current token
  while (i < text.size()) {
    const char ch = text[i];
    if (auto after = skip_comment(text, i); after != i) {
      i = after;
    } else if (ch == '\'' || ch == '"' || ch == '`') {
      i = skip_quoted(text, i);
      prev = ch;
    } else if (ident_char(ch)) {
      i = read_identifier(text, i, prev, out);
      prev = 'a';
    } else {
      if (std::isspace(static_cast<unsigned char>(ch)) == 0) prev = ch;
      ++i;
    }
  }
  return out;
}

/// One expression's use: how it is compiled, and where it came from, for messages.
struct use {
  script_kind kind = script_kind::value;
  bool condition = false;  ///< A `cond`: the null datamodel evaluates `In()` there.
  const char* element = "";
  const char* attribute = "";  ///< Empty for a `<script>` body.
};

class checker {
 public:
  checker(const statechart& c, std::vector<diagnostic>& out, const detail::syntax_checker& js)
      : c_(c), out_(out), js_(js), ecmascript_(c.datamodel == "ecmascript"), seen_(c.expressions.size(), false) {
    // Not `find_state`: a chart with errors was never finalized, and its lookup table is empty.
    for (const auto& s : c.states) ids_.insert(s.id);
  }

  void run() {
    for (const auto& s : c_.states) state(s);
    for (const auto& t : c_.transitions) {
      expr(t.cond, {script_kind::value, true, "transition", "cond"});
      block(t.body);
    }
    for (const auto& d : c_.data) data(d);
    for (const auto& inv : c_.invokes) invoke(inv);
    block(c_.root_scripts);
    finish();
  }

 private:
  void add(source_location loc, std::string msg, severity level) {
    diagnostic d{c_.source_name, loc, std::move(msg)};
    d.level = level;
    out_.push_back(std::move(d));
  }
  void warn(source_location loc, std::string msg) { add(loc, std::move(msg), severity::warning); }

  void state(const state_node& s) {
    for (const auto& b : s.onentry) block(b);
    for (const auto& b : s.onexit) block(b);
    if (!s.done) return;
    params(s.done->params);
    content(s.done->body);
  }

  /// After the walk: the expressions it did not reach, the native actions, the inline charts.
  void finish() {
    for (expr_index e = 0; e < c_.expressions.size(); ++e)  // anything the walk did not reach
      if (!seen_[e]) expr(e, {script_kind::value, false, "expression", ""});
    for (const auto& [name, loc] : natives_)
      warn(loc, "native action '" + name + "' (<xsn:action>) runs only when the program binds it "
                "(session_options::actions); `xsn run` and unbound sessions cannot run it");
    for (const auto& inline_chart : c_.inline_charts)
      if (inline_chart) checker(*inline_chart, out_, js_).run();
  }

  /// `'cond' of <transition>`, or `<script>` (built in steps: GCC 12's -Wrestrict).
  static std::string where(const use& u) {
    std::string w;
    if (*u.attribute != '\0') {
      w += '\'';
      w += u.attribute;
      w += "' of ";
    }
    w += '<';
    w += u.element;
    w += '>';
    return w;
  }

  /// `'cond' of <transition> `x ==``: where, and the text when there is one.
  static std::string subject(const use& u, const expression& x) {
    std::string s = where(u);
    if (x.text.empty()) return s;
    s += " `";
    s += quote(x.text);
    s += '`';
    return s;
  }

  void check_in_ids(const expression& x, const std::vector<std::string>& ids) {
    for (const auto& id : ids)
      if (ids_.count(id) == 0) add(x.loc, "In('" + id + "'): '" + id + "' is not a state id", severity::error);
  }

  void expr(expr_index e, const use& u) {
    if (e == npos || e >= c_.expressions.size()) return;
    seen_[e] = true;
    const auto& x = c_.expressions[e];
    if (!ecmascript_) return null_datamodel_expr(x, u);
    if (js_) {
      if (auto err = js_(u.kind, x.text)) {
        add(x.loc, "ECMAScript error in " + subject(u, x) + ": " + *err, severity::error);
        return;  // In() ids in text that does not compile say nothing more
      }
    }
    if (u.kind != script_kind::location) check_in_ids(x, in_literals(x.text));
  }

  /// The null datamodel evaluates only `In('id')` conditions.
  void null_datamodel_expr(const expression& x, const use& u) {
    std::string_view id;
    if (u.condition && detail::parse_in_predicate(x.text, id)) {
      check_in_ids(x, {std::string(id)});
    } else if (u.condition) {
      warn(x.loc, subject(u, x) + " is not an In('id') predicate, the only condition the null "
                  "datamodel evaluates (no datamodel=\"ecmascript\" on <scxml>): error.execution at run time");
    } else {
      warn(x.loc, subject(u, x) + ": the null datamodel (no datamodel=\"ecmascript\" on "
                  "<scxml>) evaluates no expressions: error.execution at run time");
    }
  }

  void block(const action_block& b) {
    for (const auto& a : b) std::visit([&](const auto& op) { action(op, a.loc); }, a.op);
  }

  void action(const raise_action&, source_location) {}
  void action(const send_action& s, source_location) {
    expr(s.eventexpr, {script_kind::value, false, "send", "eventexpr"});
    expr(s.targetexpr, {script_kind::value, false, "send", "targetexpr"});
    expr(s.typeexpr, {script_kind::value, false, "send", "typeexpr"});
    expr(s.idlocation, {script_kind::location, false, "send", "idlocation"});
    expr(s.delayexpr, {script_kind::value, false, "send", "delayexpr"});
    for (auto e : s.namelist) expr(e, {script_kind::value, false, "send", "namelist"});
    params(s.params);
    content(s.body);
  }
  void action(const cancel_action& c, source_location) {
    expr(c.sendidexpr, {script_kind::value, false, "cancel", "sendidexpr"});
  }
  void action(const log_action& l, source_location) { expr(l.expr, {script_kind::value, false, "log", "expr"}); }
  void action(const assign_action& a, source_location) {
    expr(a.location, {script_kind::location, false, "assign", "location"});
    expr(a.expr, {script_kind::value, false, "assign", "expr"});
    content(a.body);
  }
  void action(const script_action& s, source_location) { expr(s.script, {script_kind::script, false, "script", ""}); }
  void action(const if_action& i, source_location) {
    bool first = true;
    for (const auto& br : i.branches) {
      expr(br.cond, {script_kind::value, true, first ? "if" : "elseif", "cond"});
      first = false;
      block(br.body);
    }
  }
  void action(const foreach_action& f, source_location) {
    expr(f.array, {script_kind::value, false, "foreach", "array"});
    expr(f.item, {script_kind::location, false, "foreach", "item"});
    expr(f.index, {script_kind::location, false, "foreach", "index"});
    block(f.body);
  }
  void action(const native_action& n, source_location loc) {
    auto [it, fresh] = natives_.emplace(n.name, loc);
    if (!fresh && std::tie(loc.line, loc.column) < std::tie(it->second.line, it->second.column)) it->second = loc;
  }

  void params(const std::vector<param>& ps) {
    for (const auto& p : ps) {
      expr(p.expr, {script_kind::value, false, "param", "expr"});
      expr(p.location, {script_kind::value, false, "param", "location"});
    }
  }
  void content(const std::optional<xsn::content>& c) {
    if (c) expr(c->expr, {script_kind::value, false, "content", "expr"});
  }
  void data(const data_decl& d) {
    if (!ecmascript_) {
      warn(d.loc, "<data id=\"" + d.id + "\">: the null datamodel (no datamodel=\"ecmascript\" on <scxml>) has no "
                  "variables: error.execution at run time");
      if (d.expr != npos) seen_[d.expr] = true;  // one warning for the element is enough
      return;
    }
    expr(d.expr, {script_kind::value, false, "data", "expr"});
  }
  void invoke(const invoke_decl& inv) {
    expr(inv.typeexpr, {script_kind::value, false, "invoke", "typeexpr"});
    expr(inv.srcexpr, {script_kind::value, false, "invoke", "srcexpr"});
    expr(inv.idlocation, {script_kind::location, false, "invoke", "idlocation"});
    for (auto e : inv.namelist) expr(e, {script_kind::value, false, "invoke", "namelist"});
    params(inv.params);
    content(inv.body);
    block(inv.finalize);
  }

  const statechart& c_;
  std::vector<diagnostic>& out_;
  const detail::syntax_checker& js_;
  bool ecmascript_;
  std::vector<bool> seen_;
  std::map<std::string, source_location> natives_;
  std::unordered_set<std::string> ids_;
};

std::vector<diagnostic> check_with(const statechart& chart, const detail::syntax_checker& js) {
  std::vector<diagnostic> out;
  if (chart.semantics != chart_semantics::scxml) return out;
  checker(chart, out, js).run();
  if (chart.datamodel == "ecmascript" && !js && !chart.expressions.empty()) {
    diagnostic d{chart.source_name, {}, "ECMAScript expressions were not compiled: xsn was built without "
                                        "ECMAScript (XSN_WITH_ECMASCRIPT=OFF)"};
    d.level = severity::warning;
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace

std::size_t check_result::errors() const noexcept {
  return static_cast<std::size_t>(std::count_if(diagnostics.begin(), diagnostics.end(),
                                                [](const diagnostic& d) { return d.level == severity::error; }));
}

std::vector<diagnostic> check_chart(const statechart& chart) {
  auto out = check_with(chart, detail::make_ecmascript_syntax_checker());
  detail::sort_and_bound(out, chart.source_name);
  return out;
}

check_result check_scxml(std::string_view text, std::string_view source_name, const std::filesystem::path& base_dir) {
  check_result out;
  std::shared_ptr<const statechart> partial;
  parse_options options;
  options.base_dir = base_dir;
  auto parsed = detail::parse_scxml_partial(text, source_name, options, &partial);
  out.chart = parsed.chart;
  out.diagnostics = std::move(parsed.errors);
  if (partial && out.diagnostics.size() <= max_parse_errors) {  // else the loader's bound is reached
    auto more = check_with(*partial, detail::make_ecmascript_syntax_checker());
    out.diagnostics.insert(out.diagnostics.end(), more.begin(), more.end());
    detail::sort_and_bound(out.diagnostics, std::string(source_name));
  }
  return out;
}

check_result check_document(const std::filesystem::path& path) {
  if (path.extension() == ".json") {
    auto r = load_xstate(path);
    return {r.chart, std::move(r.errors)};
  }
  std::string text;
  if (!detail::read_file(path, text)) return {nullptr, {{path.string(), {}, "cannot read file"}}};
  return check_scxml(text, path.string(), path.parent_path());
}

}  // namespace xsn::inline v0
