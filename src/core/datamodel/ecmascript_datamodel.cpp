/// \file The ECMAScript datamodel (W3C SCXML B.2) on Duktape, sandboxed.
///
/// Safety model, in short:
/// - One Duktape heap per datamodel. Its allocator counts every byte against
///   `script_limits::heap_limit`; a refused allocation becomes a script error (`alloc failed`).
/// - Every call into Duktape that can run script code goes through `run()`: a Duktape protected
///   call under a fresh deadline (`script_limits::time_budget`, enforced by the exec-timeout and
///   native-stack hooks that cmake/xsnDuktape.cmake compiles in) and a native-stack floor.
/// - Duktape reports errors with longjmp, which skips C++ destructors. The callbacks given to
///   `run()` and the native functions therefore only touch Duktape and pre-existing C++ objects:
///   they never create an object with a non-trivial destructor.
/// - The fatal handler throws `script_fatal`, which unwinds through Duktape (compiled with
///   -fexceptions) to `run()`; the heap is then in an unknown state, so its memory is released
///   block by block without asking Duktape, and the datamodel reports errors until `setup()` or
///   `restore()` builds a fresh heap.
#include <xsn/config.hpp>
#include <xsn/runtime/datamodel.hpp>

#include "duktape.h"
#include "datamodel/ecmascript_check.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <pugixml.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace xsn::inline v0 {
namespace {

using script_clock = std::chrono::steady_clock;

/// Native stack an evaluation may use before Duktape raises a `RangeError` (compiler, RegExp
/// and JSON recursion run on the caller's stack).
inline constexpr std::uintptr_t native_stack_budget = 512u * 1024u;

/// Lowest stack address the running evaluation may reach on this thread; 0 when none runs.
thread_local std::uintptr_t stack_floor = 0;

struct heap_state;
/// The heap whose evaluation runs on this thread; nullptr when none runs.
thread_local heap_state* active_heap = nullptr;

/// The native-stack hook reads the clock once per this many calls.
inline constexpr std::uint32_t native_clock_period = 256;

/// Every allocation carries this header: the heap's usage is known exactly, and the blocks of a
/// heap abandoned after a fatal error can be freed without Duktape.
struct alignas(std::max_align_t) block_header {
  block_header* prev;
  block_header* next;
  std::size_t size;
};

/// The state Duktape hands back to our hooks (the heap's `udata`).
struct heap_state {
  block_header blocks{};  ///< Sentinel of the circular list of live blocks.
  std::size_t used = 0;   ///< Bytes allocated, headers included.
  std::size_t limit = 0;  ///< `script_limits::heap_limit`.
  script_clock::time_point deadline = script_clock::time_point::min();  ///< Past when idle.
  datamodel_host* host = nullptr;  ///< For `In()`.
  std::uint32_t native_ticks = 0;  ///< Calls of the native-stack hook, to pace clock reads.
  bool native_expired = false;     ///< The native-stack hook has seen the deadline pass.

  heap_state(std::size_t lim, datamodel_host* h) : limit(lim), host(h) {
    blocks.prev = blocks.next = &blocks;
  }
  heap_state(const heap_state&) = delete;
  heap_state& operator=(const heap_state&) = delete;
};

/// The address of a local variable of the calling frame.
inline std::uintptr_t stack_position() noexcept {
  volatile char marker = 0;
  return reinterpret_cast<std::uintptr_t>(&marker);
}

}  // namespace
}  // namespace xsn::inline v0

/// Duktape's exec-timeout hook: true once the running evaluation is past its deadline. Duktape
/// keeps calling it (and rethrowing) until the error has left every script catch block.
extern "C" duk_bool_t xsn_duk_exec_timeout_check(void* udata) {
  const auto* s = static_cast<const xsn::heap_state*>(udata);
  return s != nullptr && xsn::script_clock::now() >= s->deadline ? 1 : 0;
}

/**
 * Duktape's native-stack hook: true when the evaluation is about to use up its stack budget.
 *
 * Duktape only checks its exec timeout between bytecode instructions, but long native loops
 * (RegExp backtracking, `new Array(1e9).indexOf(x)`) call this hook at every step, so it also
 * enforces the deadline there; once past, it stays true for the rest of the evaluation.
 */
extern "C" duk_bool_t xsn_duk_native_stack_check(void) {
  using namespace xsn;
  if (stack_floor != 0 && stack_position() < stack_floor) return 1;
  heap_state* s = active_heap;
  if (s == nullptr) return 0;
  if (s->native_expired) return 1;
  if (++s->native_ticks % native_clock_period != 0 || script_clock::now() < s->deadline) return 0;
  s->native_expired = true;
  return 1;
}

namespace xsn::inline v0 {
namespace {

/// Thrown by the fatal handler; means "this heap can no longer be trusted".
struct script_fatal {
  std::string message;
};

/// Nesting limit for JSON crossing the boundary (Duktape's own JSON limit is 1000).
constexpr std::size_t max_json_depth = 1000;
/// Deepest element nesting of an XML value turned into a DOM (its serialiser recurses).
constexpr std::size_t max_xml_depth = 1000;
/// Fewest heap bytes a DOM node takes: descriptions with more nodes than the heap can hold at
/// this rate are refused before any is built.
constexpr std::size_t min_dom_node_bytes = 64;
/// Longest error message and expression excerpt we copy out of the heap.
constexpr std::size_t max_message = 512;
constexpr std::size_t max_excerpt = 80;

// ---- memory ----------------------------------------------------------------------------------

void link_block(heap_state& s, block_header* b) noexcept {
  b->prev = &s.blocks;
  b->next = s.blocks.next;
  s.blocks.next->prev = b;
  s.blocks.next = b;
}

void unlink_block(block_header* b) noexcept {
  b->prev->next = b->next;
  b->next->prev = b->prev;
}

/// True when growing usage from `old_total` to `new_total` bytes stays within the limit.
bool fits(const heap_state& s, std::size_t old_total, std::size_t new_total) noexcept {
  return new_total <= old_total || new_total - old_total <= s.limit - std::min(s.limit, s.used);
}

void* heap_alloc(void* udata, duk_size_t size) {
  auto& s = *static_cast<heap_state*>(udata);
  const std::size_t total = size + sizeof(block_header);
  if (total < size || !fits(s, 0, total)) return nullptr;
  auto* b = static_cast<block_header*>(std::malloc(total));
  if (b == nullptr) return nullptr;
  b->size = size;
  link_block(s, b);
  s.used += total;
  return b + 1;
}

void heap_free(void* udata, void* ptr) {
  if (ptr == nullptr) return;
  auto& s = *static_cast<heap_state*>(udata);
  auto* b = static_cast<block_header*>(ptr) - 1;
  unlink_block(b);
  s.used -= b->size + sizeof(block_header);
  std::free(b);
}

void* heap_realloc(void* udata, void* ptr, duk_size_t size) {
  if (ptr == nullptr) return heap_alloc(udata, size);
  if (size == 0) {  // Duktape accepts nullptr as the result of a zero-size realloc.
    heap_free(udata, ptr);
    return nullptr;
  }
  auto& s = *static_cast<heap_state*>(udata);
  auto* b = static_cast<block_header*>(ptr) - 1;
  const std::size_t old_total = b->size + sizeof(block_header);
  const std::size_t new_total = size + sizeof(block_header);
  if (new_total < size || !fits(s, old_total, new_total)) return nullptr;
  unlink_block(b);
  auto* nb = static_cast<block_header*>(std::realloc(b, new_total));
  if (nb == nullptr) {
    link_block(s, b);
    return nullptr;
  }
  nb->size = size;
  link_block(s, nb);
  s.used = s.used - old_total + new_total;
  return nb + 1;
}

/// Frees every block still live: the whole heap when Duktape can no longer be trusted.
void free_all_blocks(heap_state& s) noexcept {
  while (s.blocks.next != &s.blocks) {
    block_header* b = s.blocks.next;
    unlink_block(b);
    std::free(b);
  }
  s.used = 0;
}

/// Duktape must not return from a fatal error; we leave through an exception instead of abort().
[[noreturn]] void on_fatal(void*, const char* msg) {
  throw script_fatal{msg != nullptr ? msg : "unknown fatal error"};
}

// ---- small helpers -----------------------------------------------------------------------------

/// `text` cut to `n` bytes, with an ellipsis when cut.
std::string excerpt(std::string_view text, std::size_t n) {
  if (text.size() <= n) return std::string(text);
  return std::string(text.substr(0, n)) + "...";
}

/// True for the names the datamodel defines and scripts may not change.
bool is_system_name(std::string_view s) {
  return s == "_sessionid" || s == "_name" || s == "_ioprocessors" || s == "_event" || s == "In";
}

/// True for an ASCII letter, digit, `_` or `$`.
bool is_identifier_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
}

/// True for the literal words an identifier may not be (`null`, `true`, `false`, `this`).
bool is_reserved_literal(std::string_view s) {
  return s == "null" || s == "true" || s == "false" || s == "this";
}

/// True for an ASCII identifier that may name a new global (`null`, `this`, ... excluded).
bool is_plain_identifier(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  if (!std::all_of(s.begin(), s.end(), is_identifier_char)) return false;
  return !is_reserved_literal(s);
}

std::string_view trim(std::string_view s) {
  constexpr std::string_view ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

/// XML whitespace normalisation: trims and collapses runs of whitespace into one space.
std::string normalise_space(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending = false;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      pending = !out.empty();
      continue;
    }
    if (pending) out += ' ';
    pending = false;
    out += c;
  }
  return out;
}

/// Parses JSON text; nullopt when it is not JSON.
std::optional<value> parse_json(std::string_view text) {
  boost::json::parse_options opt;
  opt.max_depth = max_json_depth;
  opt.allow_invalid_utf8 = true;  // Duktape strings are not always valid UTF-8 (lone surrogates).
  boost::system::error_code ec;
  value v = boost::json::parse(text, ec, {}, opt);
  if (ec) return std::nullopt;
  return v;
}

// ---- XML values --------------------------------------------------------------------------------

/// Parses `text` as XML into `doc`. Returns the root element when the text is well-formed (as
/// pugixml sees it) with exactly one element at the top and nothing else there but whitespace,
/// comments, processing instructions and an XML declaration; otherwise an empty node. A DOCTYPE
/// is refused. `keep_space` keeps whitespace-only text nodes inside the root.
pugi::xml_node parse_xml(pugi::xml_document& doc, std::string_view text, bool keep_space) {
  // A fragment, so that text beside the root element is seen (and refused) instead of dropped.
  unsigned opts = pugi::parse_cdata | pugi::parse_escapes | pugi::parse_wconv_attribute |
                  pugi::parse_eol | pugi::parse_fragment | pugi::parse_doctype |
                  pugi::parse_comments | pugi::parse_pi | pugi::parse_declaration;
  if (keep_space) opts |= pugi::parse_ws_pcdata;
  if (!doc.load_buffer(text.data(), text.size(), opts, pugi::encoding_utf8)) return {};
  pugi::xml_node root;
  for (pugi::xml_node n : doc.children()) {
    switch (n.type()) {
      case pugi::node_element:
        if (root) return {};
        root = n;
        break;
      case pugi::node_comment:
      case pugi::node_pi:
      case pugi::node_declaration: break;
      case pugi::node_pcdata:
        if (trim(n.value()).empty()) break;
        return {};
      default: return {};  // CDATA, DOCTYPE
    }
  }
  return root;
}

/// The DOM `nodeType` of `n`: 1 element, 3 text, 4 CDATA, 8 comment; 0 for the others.
int dom_node_type(const pugi::xml_node& n) {
  switch (n.type()) {
    case pugi::node_element: return 1;
    case pugi::node_pcdata: return 3;
    case pugi::node_cdata: return 4;
    case pugi::node_comment: return 8;
    default: return 0;
  }
}

/// The entry of element `n`: `[parent, 1, name, attribute, value, ...]`.
boost::json::array element_entry(std::int64_t parent, const pugi::xml_node& n) {
  boost::json::array e{parent, 1, n.name()};
  for (pugi::xml_attribute a : n.attributes()) {
    e.emplace_back(a.name());
    e.emplace_back(a.value());
  }
  return e;
}

/// Counts a node of DOM type `type` against `max_nodes`; true when there is no room left for it.
bool over_budget(int type, std::size_t& max_nodes) { return type != 0 && max_nodes-- == 0; }

/// Appends the entry of `n` (of DOM type `type`) to `out`; nothing for a node left out (type 0).
void append_entry(boost::json::array& out, std::int64_t parent, const pugi::xml_node& n, int type) {
  if (type == 1) out.emplace_back(element_entry(parent, n));
  else if (type != 0) out.emplace_back(boost::json::array{parent, type, n.value()});
}

/// Moves `n` to the next node in document order after its subtree, staying inside `root` and
/// popping an entry of `open` per element left; false when the walk is over.
bool next_outside(pugi::xml_node& n, const pugi::xml_node& root, std::vector<std::int64_t>& open) {
  while (n != root && !n.next_sibling()) {
    n = n.parent();
    open.pop_back();
  }
  if (n == root) return false;
  n = n.next_sibling();
  return true;
}

/**
 * The DOM description of an XML value for the bootstrap's `makeDom`: the nodes of its root
 * element in document order, each `[parent, nodeType, ...]` where `parent` indexes the parent
 * element's entry (-1: the document) and `...` is `name, attribute, value, ...` for an element
 * (1) and the text of a text (3), CDATA (4) or comment (8) node. Processing instructions are
 * left out. Null when `markup` is not XML; an error when deeper than `max_xml_depth` or with
 * more than `max_nodes` nodes. Iterative, so any depth is safe here.
 */
result<value> describe_xml(std::string_view markup, std::size_t& max_nodes) {
  pugi::xml_document doc;
  const pugi::xml_node root = parse_xml(doc, markup, true);
  if (!root) return value(nullptr);
  boost::json::array out;
  std::vector<std::int64_t> open;  // the entries of the elements around `n`
  pugi::xml_node n = root;
  for (;;) {
    const std::int64_t parent = open.empty() ? -1 : open.back();
    const int type = dom_node_type(n);
    if (over_budget(type, max_nodes)) return eval_error{"XML value too large for the script heap"};
    append_entry(out, parent, n, type);
    if (type == 1 && n.first_child()) {
      if (open.size() >= max_xml_depth) {
        return eval_error{"XML value nested deeper than " + std::to_string(max_xml_depth) + " elements"};
      }
      open.push_back(static_cast<std::int64_t>(out.size()) - 1);
      n = n.first_child();
      continue;
    }
    if (!next_outside(n, root, open)) break;
  }
  return value(std::move(out));
}

/// A value on its way into a heap: its JSON text and, when XML values are inside, a JSON object
/// mapping each of their markups to its DOM description (null: not XML after all).
struct js_input {
  std::string json;
  std::string docs;  ///< Empty: no XML values.
};

/// Prepares `v` for `push_input`; fails when an XML value is too deep or too large.
result<js_input> to_js_input(const value& v, std::size_t heap_limit) {
  js_input in{boost::json::serialize(v), {}};
  if (in.json.find("\"xsn:xml\"") == std::string::npos) return in;  // the usual case: no XML
  boost::json::object docs;
  std::size_t max_nodes = heap_limit / min_dom_node_bytes;
  std::vector<const value*> todo{&v};
  while (!todo.empty()) {
    const value* x = todo.back();
    todo.pop_back();
    if (const boost::json::string* m = xml_markup(*x)) {
      if (docs.find(*m) != docs.end()) continue;
      auto d = describe_xml(*m, max_nodes);
      if (!d) return d.error();
      docs.emplace(*m, std::move(*d));
    } else if (const auto* a = x->if_array()) {
      for (const value& e : *a) todo.push_back(&e);
    } else if (const auto* o = x->if_object()) {
      for (const auto& kv : *o) todo.push_back(&kv.value());
    }
  }
  if (!docs.empty()) in.docs = boost::json::serialize(docs);
  return in;
}

/// A JS number as JSON: integers stay integers when exact; NaN and infinities become null.
value number_value(double d) {
  if (!std::isfinite(d)) return nullptr;
  constexpr double two_63 = 9223372036854775808.0;
  if (d == std::trunc(d) && d >= -two_63 && d < two_63) return static_cast<std::int64_t>(d);
  return d;
}

const char* event_type_name(event_type t) {
  switch (t) {
    case event_type::platform: return "platform";
    case event_type::internal: return "internal";
    case event_type::external: return "external";
  }
  return "external";
}

// ---- pieces run inside protected calls (longjmp-safe: no C++ object is created) ---------------

template <class Fn>
duk_ret_t trampoline(duk_context* ctx, void* fn) {
  return (*static_cast<Fn*>(fn))(ctx);
}

/// [...] -> [... v]: decodes JSON text produced by `boost::json::serialize`.
void push_json(duk_context* ctx, const std::string& json) {
  duk_push_lstring(ctx, json.data(), json.size());
  duk_json_decode(ctx, -1);
}

/// [...] -> [... f]: `f` is the stash's `name` (an api function or a cache array).
void push_stashed(duk_context* ctx, const char* name) {
  duk_push_heap_stash(ctx);
  duk_get_prop_string(ctx, -1, name);
  duk_remove(ctx, -2);
}

/// [...] -> [... fn]: compiles expression text as the kind of code `kind` names:
/// 'v' value (an expression, else statements whose completion value is the result),
/// 'l' location (a strict setter `function (v)` assigning `v` to the location), 's' script.
void compile(duk_context* ctx, char kind, const std::string& text) {
  if (kind == 'l') {
    duk_push_string(ctx, "function (__xsn_value) {'use strict'; (");
    duk_push_lstring(ctx, text.data(), text.size());
    duk_push_string(ctx, "\n) = __xsn_value; }");
    duk_concat(ctx, 3);
    duk_push_string(ctx, "location");
    duk_compile(ctx, DUK_COMPILE_FUNCTION);
    return;
  }
  if (kind == 'v') {
    duk_push_string(ctx, "(");
    duk_push_lstring(ctx, text.data(), text.size());
    duk_push_string(ctx, "\n)");
    duk_concat(ctx, 3);
    duk_push_string(ctx, "expr");
    if (duk_pcompile(ctx, 0) == 0) return;
    duk_pop(ctx);  // Not a bare expression (`new f();`): compile it as statements instead.
  }
  duk_push_lstring(ctx, text.data(), text.size());
  duk_push_string(ctx, kind == 's' ? "script" : "expr");
  duk_compile(ctx, 0);
}

/// [...] -> [... fn]: the compiled function of `kind` for expression `e`, compiled on first use
/// and cached in the stash array named by `kind`.
void push_compiled(duk_context* ctx, char kind, expr_index e, const std::string& text) {
  const char key[2] = {kind, '\0'};
  push_stashed(ctx, key);  // [cache]
  if (duk_get_prop_index(ctx, -1, e) != 0) {
    duk_remove(ctx, -2);
    return;
  }
  duk_pop(ctx);
  compile(ctx, kind, text);  // [cache fn]
  duk_dup_top(ctx);
  duk_put_prop_index(ctx, -3, e);
  duk_remove(ctx, -2);
}

/// [... v] -> [... v']: prepares a result for conversion to `value`. Functions and symbols become
/// undefined; other objects become their JSON text (returns true), primitives stay.
bool prepare_for_json(duk_context* ctx) {
  if (duk_is_function(ctx, -1) || duk_is_symbol(ctx, -1) || duk_is_pointer(ctx, -1)) {
    duk_pop(ctx);
    duk_push_undefined(ctx);
    return false;
  }
  if (!duk_is_object(ctx, -1) && !duk_is_buffer(ctx, -1)) return false;
  duk_json_encode(ctx, -1);
  return true;
}

void push_input(duk_context* ctx, const js_input& in);

/// [...] -> [... obj]: `_event` as W3C B.2 describes it; empty fields are undefined.
void push_event(duk_context* ctx, const event& ev, const js_input* data) {
  duk_push_object(ctx);
  duk_push_lstring(ctx, ev.name.data(), ev.name.size());
  duk_put_prop_string(ctx, -2, "name");
  duk_push_string(ctx, event_type_name(ev.type));
  duk_put_prop_string(ctx, -2, "type");
  const std::pair<const char*, const std::string*> fields[] = {
      {"sendid", &ev.sendid}, {"origin", &ev.origin},
      {"origintype", &ev.origintype}, {"invokeid", &ev.invokeid}};
  for (const auto& [key, text] : fields) {
    if (text->empty()) duk_push_undefined(ctx);
    else duk_push_lstring(ctx, text->data(), text->size());
    duk_put_prop_string(ctx, -2, key);
  }
  if (data == nullptr) duk_push_undefined(ctx);
  else push_input(ctx, *data);
  duk_put_prop_string(ctx, -2, "data");
}

/// `In(id)`: asks the host whether state `id` is active.
duk_ret_t in_state_native(duk_context* ctx) {
  duk_size_t len = 0;
  const char* id = duk_to_lstring(ctx, 0, &len);
  duk_memory_functions funcs{};
  duk_get_memory_functions(ctx, &funcs);
  const auto* s = static_cast<const heap_state*>(funcs.udata);
  int answer = -1;
  try {
    answer = s->host != nullptr && s->host->in_state(std::string_view(id, len)) ? 1 : 0;
  } catch (...) {
    answer = -1;  // Must not unwind through Duktape: report a script error instead.
  }
  if (answer < 0) return DUK_RET_ERROR;
  duk_push_boolean(ctx, answer == 1);
  return 1;
}

/// Run once per heap, before any user code: removes the non-standard `Duktape` object, defines
/// the read-only system variables and returns the helper functions C++ calls (kept in the stash,
/// out of the scripts' reach). Built-ins are captured first, so scripts replacing
/// `Array.prototype.slice` or `JSON.stringify` cannot change what the helpers do; `lib` keeps
/// those the DOM module needs.
constexpr std::string_view bootstrap_source = R"js(
(function (g, sid, name, io, inFn) {
  'use strict';
  var defineProperty = Object.defineProperty, freeze = Object.freeze, create = Object.create,
      names = Object.getOwnPropertyNames, keys = Object.keys, isArray = Array.isArray,
      slice = Array.prototype.slice, join = Array.prototype.join, apply = Reflect.apply,
      deleteProperty = Reflect.deleteProperty, hasOwn = Object.prototype.hasOwnProperty,
      replace = String.prototype.replace, indexOf = String.prototype.indexOf,
      substring = String.prototype.substring, stringify = JSON.stringify, TypeErr = TypeError;
  var sys = create(null), base = create(null), ev, list, i;
  function readOnly(k, get) {
    sys[k] = true;
    defineProperty(g, k, { get: get, enumerable: false, configurable: false,
      set: function () { throw new TypeErr(k + ' is a read-only system variable'); } });
  }
  function deepFreeze(o) {
    if (o !== null && typeof o === 'object') {
      var ks = names(o), j;
      for (j = 0; j < ks.length; j++) deepFreeze(o[ks[j]]);
      freeze(o);
    }
    return o;
  }
  deleteProperty(g, 'Duktape');
  io = deepFreeze(io);
  readOnly('_sessionid', function () { return sid; });
  readOnly('_name', function () { return name; });
  readOnly('_ioprocessors', function () { return io; });
  readOnly('_event', function () { return ev; });
  readOnly('In', function () { return inFn; });
  list = names(g);
  for (i = 0; i < list.length; i++) base[list[i]] = true;
  var api = {
    setEvent: function (e) { ev = e === undefined ? undefined : freeze(e); },
    declare: function (k, v) {
      if (sys[k] === true) throw new TypeErr(k + ' is a read-only system variable');
      delete base[k];
      g[k] = v;
    },
    ensure: function (k) {
      if (sys[k] !== true && !(k in g)) { delete base[k]; g[k] = undefined; }
    },
    copyArray: function (a) {
      if (!isArray(a)) throw new TypeErr('foreach: the array expression is not an array');
      return apply(slice, a, []);
    },
    save: function () {
      var list = names(g), out = '{', sep = '', j, k, v, s;
      for (j = 0; j < list.length; j++) {
        k = list[j];
        if (base[k] === true) continue;
        v = g[k];
        if (v === undefined) { s = 'null'; } else {
          try { s = stringify(v); } catch (e) {
            if (!(e instanceof TypeErr)) throw e;  // cyclic: skip it; anything else: fail
            s = undefined;
          }
        }
        if (s !== undefined) { out += sep + stringify(k) + ':' + s; sep = ','; }
      }
      return out + '}';
    },
    restore: function (vars) {
      var ks = keys(vars), j;
      for (j = 0; j < ks.length; j++) api.declare(ks[j], vars[ks[j]]);
    },
    lib: freeze({ defineProperty: defineProperty, freeze: freeze, create: create, keys: keys,
      isArray: isArray, join: join, apply: apply, hasOwn: hasOwn, replace: replace,
      indexOf: indexOf, substring: substring })
  };
  return api;
})
)js";

/**
 * The DOM module, compiled into a heap when the first XML value enters it (most sessions never
 * see one, so their heaps stay small and quick to set up). Called with the bootstrap's `lib` and
 * the hidden-symbol key `hid`; returns `revive(v, docs)`, which replaces the XML values
 * (`{"xsn:xml": markup}`, see `xml_markup`) in `v` by documents built from their descriptions
 * (`describe_xml`; a null description: not XML, the markup stays text).
 *
 * A document (nodeType 9) holds element (1), text (3), CDATA (4) and comment (8) nodes, all
 * frozen, sharing `nodeProto`. It keeps its markup under `hid`, which scripts cannot name;
 * `toJSON` turns a document or element back into an XML value, so results and `save()`
 * round-trip.
 */
constexpr std::string_view dom_source = R"js(
(function (lib, hid) {
  'use strict';
  var defineProperty = lib.defineProperty, freeze = lib.freeze, create = lib.create,
      keys = lib.keys, isArray = lib.isArray, join = lib.join, apply = lib.apply,
      hasOwn = lib.hasOwn, replace = lib.replace, indexOf = lib.indexOf,
      substring = lib.substring;
  var none = freeze([]), escText = /[&<>]/g, escAttr = /[&<>"\t\n\r]/g,
      entities = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\t': '&#9;',
                   '\n': '&#10;', '\r': '&#13;' };
  function entity(c) { return entities[c]; }
  function descendants(n, keep) {  // document order, without recursion
    var out = [], stack = [], top = 0, k, c = n.childNodes;
    for (k = c.length - 1; k >= 0; k--) stack[top++] = c[k];
    while (top > 0) {
      n = stack[--top];
      if (keep(n)) out[out.length] = n;
      for (k = n.childNodes.length - 1; k >= 0; k--) stack[top++] = n.childNodes[k];
    }
    return out;
  }
  function isText(n) { return n.nodeType === 3 || n.nodeType === 4; }
  function markup(n, out) {
    var k, a, ks, c = n.childNodes;
    switch (n.nodeType) {
      case 3: out[out.length] = apply(replace, n.data, [escText, entity]); return;
      case 4: out[out.length] = '<![CDATA[' + n.data + ']]>'; return;
      case 8: out[out.length] = '<!--' + n.data + '-->'; return;
      case 9: out[out.length] = n[hid]; return;
    }
    out[out.length] = '<' + n.nodeName;
    a = n.attributes;
    ks = keys(a);
    for (k = 0; k < ks.length; k++) {
      out[out.length] = ' ' + ks[k] + '="' + apply(replace, a[ks[k]], [escAttr, entity]) + '"';
    }
    if (c.length === 0) { out[out.length] = '/>'; return; }
    out[out.length] = '>';
    for (k = 0; k < c.length; k++) markup(c[k], out);
    out[out.length] = '</' + n.nodeName + '>';
  }
  function serialise(n) { var out = []; markup(n, out); return apply(join, out, ['']); }
  function isTree(n) { return n.nodeType === 1 || n.nodeType === 9; }
  var nodeProto = {
    getAttribute: function (k) {
      var a = this.attributes;
      return a !== undefined && apply(hasOwn, a, [k]) ? a[k] : null;
    },
    hasAttribute: function (k) {
      return this.attributes !== undefined && apply(hasOwn, this.attributes, [k]);
    },
    getElementsByTagName: function (tag) {
      tag = '' + tag;
      return descendants(this, function (n) {
        return n.nodeType === 1 && (tag === '*' || n.nodeName === tag);
      });
    },
    hasChildNodes: function () { return this.childNodes.length > 0; },
    toString: function () { return isTree(this) ? serialise(this) : this.data; },
    toJSON: function () { return isTree(this) ? { 'xsn:xml': serialise(this) } : this.data; }
  };
  function getter(k, get) {
    defineProperty(nodeProto, k, { get: get, enumerable: false, configurable: false });
  }
  function sibling(n, step) {
    var c = n.parentNode === null ? none : n.parentNode.childNodes, k;
    for (k = 0; k < c.length; k++) if (c[k] === n) return c[k + step] || null;
    return null;
  }
  function prefixOf(n) {
    var k = n.nodeType === 1 ? apply(indexOf, n.nodeName, [':']) : -1;
    return k < 0 ? null : apply(substring, n.nodeName, [0, k]);
  }
  getter('firstChild', function () { return this.childNodes[0] || null; });
  getter('lastChild', function () { return this.childNodes[this.childNodes.length - 1] || null; });
  getter('nextSibling', function () { return sibling(this, 1); });
  getter('previousSibling', function () { return sibling(this, -1); });
  getter('children', function () {
    var out = [], c = this.childNodes, k;
    for (k = 0; k < c.length; k++) if (c[k].nodeType === 1) out[out.length] = c[k];
    return out;
  });
  getter('firstElementChild', function () { return this.children[0] || null; });
  getter('textContent', function () {
    var t = this.nodeType, parts, k;
    if (t === 9) return null;
    if (t !== 1) return this.data;
    parts = descendants(this, isText);
    for (k = 0; k < parts.length; k++) parts[k] = parts[k].data;
    return apply(join, parts, ['']);
  });
  getter('prefix', function () { return prefixOf(this); });
  getter('localName', function () {
    var p = prefixOf(this);
    if (this.nodeType !== 1) return null;
    return p === null ? this.nodeName : apply(substring, this.nodeName, [p.length + 1]);
  });
  getter('namespaceURI', function () {  // from the xmlns attributes inside the value only
    var p = prefixOf(this), k = p === null ? 'xmlns' : 'xmlns:' + p, n;
    if (this.nodeType !== 1) return null;
    if (p === 'xml') return 'http://www.w3.org/XML/1998/namespace';
    for (n = this; n.nodeType === 1; n = n.parentNode) {
      if (apply(hasOwn, n.attributes, [k])) return n.attributes[k] || null;
    }
    return null;
  });
  freeze(nodeProto);
  function makeDom(xml, desc) {  // desc: the nodes in document order, see describe_xml
    var doc = create(nodeProto), nodes = [], j, k, e, n, p, a;
    doc.nodeType = 9;
    doc.nodeName = '#document';
    doc.parentNode = doc.ownerDocument = null;
    doc.childNodes = [];
    doc[hid] = xml;
    for (j = 0; j < desc.length; j++) {
      e = desc[j];
      p = e[0] < 0 ? doc : nodes[e[0]];
      n = create(nodeProto);
      n.nodeType = e[1];
      if (e[1] === 1) {
        n.nodeName = n.tagName = e[2];
        a = create(null);
        for (k = 3; k + 1 < e.length; k += 2) a[e[k]] = e[k + 1];
        n.attributes = freeze(a);
        n.childNodes = [];
      } else {
        n.nodeName = e[1] === 3 ? '#text' : e[1] === 4 ? '#cdata-section' : '#comment';
        n.data = n.nodeValue = e[2];
        n.childNodes = none;
      }
      n.parentNode = p;
      n.ownerDocument = doc;
      p.childNodes[p.childNodes.length] = n;
      nodes[j] = n;
    }
    for (j = 0; j < nodes.length; j++) {
      freeze(nodes[j].childNodes);
      freeze(nodes[j]);
    }
    doc.documentElement = doc.childNodes[0];
    freeze(doc.childNodes);
    return freeze(doc);
  }
  return function revive(v, docs) {  // docs: markup -> DOM description, or null when not XML
    function walk(x) {
      var ks, j, m, y;
      if (x === null || typeof x !== 'object') return x;
      if (isArray(x)) {
        for (j = 0; j < x.length; j++) if ((y = walk(x[j])) !== x[j]) x[j] = y;
        return x;
      }
      ks = keys(x);
      if (ks.length === 1 && ks[0] === 'xsn:xml' && typeof (m = x[ks[0]]) === 'string' &&
          apply(hasOwn, docs, [m])) {
        return docs[m] === null ? m : makeDom(m, docs[m]);
      }
      for (j = 0; j < ks.length; j++) {
        if ((y = walk(x[ks[j]])) === x[ks[j]]) continue;
        defineProperty(x, ks[j], {  // not `x[k] = y`: the key may be __proto__
          value: y, writable: true, enumerable: true, configurable: true });
      }
      return x;
    }
    return walk(v);
  };
})
)js";

/// [...] -> [...]: runs the bootstrap and stores its helpers and the compile caches in the stash.
void bootstrap(duk_context* ctx, const std::string& sid, const std::string& name,
               const std::string& io_json) {
  duk_push_heap_stash(ctx);  // [stash]
  duk_push_lstring(ctx, bootstrap_source.data(), bootstrap_source.size());
  duk_push_string(ctx, "bootstrap");
  duk_compile(ctx, 0);
  duk_call(ctx, 0);  // [stash boot]
  duk_push_global_object(ctx);
  duk_push_lstring(ctx, sid.data(), sid.size());
  duk_push_lstring(ctx, name.data(), name.size());
  push_json(ctx, io_json);
  duk_push_c_function(ctx, in_state_native, 1);
  duk_call(ctx, 5);  // [stash api]
  duk_put_prop_string(ctx, -2, "api");
  for (const char* cache : {"v", "l", "s", "fe"}) {
    duk_push_array(ctx);
    duk_put_prop_string(ctx, -2, cache);
  }
  duk_pop(ctx);
}

/// [...] -> [... fn]: the api helper `name`.
void push_api(duk_context* ctx, const char* name) {
  push_stashed(ctx, "api");
  duk_get_prop_string(ctx, -1, name);
  duk_remove(ctx, -2);
}

/// [...] -> [... fn]: the DOM module's `revive`, compiled on first use and kept in the stash.
void push_revive(duk_context* ctx) {
  push_stashed(ctx, "revive");
  if (!duk_is_undefined(ctx, -1)) return;
  duk_pop(ctx);
  duk_push_heap_stash(ctx);  // [stash]
  duk_push_lstring(ctx, dom_source.data(), dom_source.size());
  duk_push_string(ctx, "dom");
  duk_compile(ctx, 0);
  duk_call(ctx, 0);  // [stash module]
  push_api(ctx, "lib");
  duk_push_string(ctx, DUK_HIDDEN_SYMBOL("xml"));
  duk_call(ctx, 2);  // [stash revive]
  duk_dup_top(ctx);
  duk_put_prop_string(ctx, -3, "revive");
  duk_remove(ctx, -2);
}

/// [...] -> [... v]: a value prepared by `to_js_input`, its XML values turned into DOM documents.
void push_input(duk_context* ctx, const js_input& in) {
  if (in.docs.empty()) {
    push_json(ctx, in.json);
    return;
  }
  push_revive(ctx);
  push_json(ctx, in.json);
  push_json(ctx, in.docs);
  duk_call(ctx, 2);
}

// ---- the datamodel ---------------------------------------------------------------------------

/// How `evaluate` converts a result.
enum class conversion { to_value, to_string, to_bool };

class ecmascript_datamodel final : public datamodel {
 public:
  explicit ecmascript_datamodel(script_limits limits) : limits_(limits) {}
  ~ecmascript_datamodel() override { destroy_heap(); }
  ecmascript_datamodel(const ecmascript_datamodel&) = delete;
  ecmascript_datamodel& operator=(const ecmascript_datamodel&) = delete;

  std::string_view name() const noexcept override { return "ecmascript"; }

  result<void> setup(const statechart& chart, datamodel_host& host) override {
    chart_ = &chart;
    host_ = &host;
    return start_heap();
  }

  result<void> declare(const data_decl& d) override { return declare_value(d.id, nullptr); }

  result<void> initialize(const data_decl& d) override {
    if (!d.src_error.empty()) {
      return fail_declared(d.id, "<data id=\"" + d.id + "\">: " + d.src_error);
    }
    if (d.expr != npos) return initialize_from_expr(d);
    if (!d.text) return declare_value(d.id, nullptr);
    auto in = to_js_input(content_value(*d.text), limits_.heap_limit);
    if (!in) return fail_declared(d.id, "<data id=\"" + d.id + "\">: " + in.error().message);
    return declare_value(d.id, &*in);
  }

  result<bool> eval_bool(expr_index e) override {
    auto r = evaluate(e, conversion::to_bool);
    if (!r) return r.error();
    return r->as_bool();
  }

  result<value> eval(expr_index e) override { return evaluate(e, conversion::to_value); }

  result<std::string> eval_string(expr_index e) override {
    auto r = evaluate(e, conversion::to_string);
    if (!r) return r.error();
    return std::string(r->as_string());
  }

  result<void> assign(expr_index location, expr_index expr) override {
    const expression* loc = find(location);
    const expression* x = find(expr);
    if (loc == nullptr || x == nullptr) return missing(loc == nullptr ? location : expr);
    auto err = run([&](duk_context* ctx) -> duk_ret_t {
      push_compiled(ctx, 'l', location, loc->text);
      duk_push_global_object(ctx);
      push_compiled(ctx, 'v', expr, x->text);
      duk_call(ctx, 0);
      duk_call_method(ctx, 1);
      return 0;
    });
    if (err) return located(*err, "assign to", loc->text);
    return {};
  }

  result<void> assign_value(expr_index location, const value& v) override {
    const expression* loc = find(location);
    if (loc == nullptr) return missing(location);
    auto in = to_js_input(v, limits_.heap_limit);
    if (!in) return located(in.error().message, "assign to", loc->text);
    auto err = run([&](duk_context* ctx) -> duk_ret_t {
      push_compiled(ctx, 'l', location, loc->text);
      duk_push_global_object(ctx);
      push_input(ctx, *in);
      duk_call_method(ctx, 1);
      return 0;
    });
    if (err) return located(*err, "assign to", loc->text);
    return {};
  }

  result<void> run_script(expr_index script) override {
    const expression* x = find(script);
    if (x == nullptr) return missing(script);
    auto err = run([&](duk_context* ctx) -> duk_ret_t {
      push_compiled(ctx, 's', script, x->text);
      duk_call(ctx, 0);
      return 0;
    });
    if (err) return located(*err, "script", x->text);
    return {};
  }

  result<void> foreach(expr_index array, expr_index item, expr_index index,
                       const std::function<bool()>& body) override;

  void set_event(const event& ev) override {
    auto set = [&](const js_input* data) {
      return !run([&](duk_context* ctx) -> duk_ret_t {
        push_api(ctx, "setEvent");
        push_event(ctx, ev, data);
        duk_call(ctx, 1);
        return 0;
      });
    };
    if (ev.data.is_null()) {
      if (set(nullptr)) return;
    } else {
      auto in = to_js_input(ev.data, limits_.heap_limit);
      if (in && set(&*in)) return;
      // XML values that cannot become DOM documents (too deep, too large) stay plain objects.
      const bool had_xml = !in || !in->docs.empty();
      const js_input plain{in ? std::move(in->json) : boost::json::serialize(ev.data), {}};
      if (had_xml && set(&plain)) return;
    }
    // Could not build it (heap exhausted?): better no `_event` than the previous one.
    (void)run([](duk_context* ctx) -> duk_ret_t {
      push_api(ctx, "setEvent");
      duk_push_undefined(ctx);
      duk_call(ctx, 1);
      return 0;
    });
  }

  value content_value(std::string_view text) override {
    if (auto v = parse_json(text)) return std::move(*v);
    const std::string_view markup = trim(text);
    pugi::xml_document doc;
    if (!markup.empty() && markup.front() == '<' && parse_xml(doc, markup, false)) {
      boost::json::object xml;
      xml.emplace(xml_value_key, markup);
      return xml;
    }
    return value(normalise_space(text));
  }

  value save() override;
  result<void> restore(const value& saved) override;

  /// Compiles `text` as `kind` ('v', 'l', 's', as `compile`) on a heap of its own and never runs
  /// it; no `setup` needed. The compile error, or nullopt.
  std::optional<std::string> syntax_error(char kind, const std::string& text) {
    if (ctx_ == nullptr && !create_heap()) return std::string("could not create the script heap");
    return run([&](duk_context* ctx) -> duk_ret_t {
      compile(ctx, kind, text);
      return 0;
    });
  }

 private:
  /// Everything `foreach` keeps between its protected calls.
  struct foreach_state {
    const expression* item = nullptr;
    const expression* index = nullptr;
    expr_index item_e = npos, index_e = npos;
    std::uint32_t slot = 0;     ///< Index in the stash's `fe` array holding the copy.
    duk_size_t length = 0;      ///< Length of the copy.
  };

  const expression* find(expr_index e) const noexcept {
    return chart_ != nullptr && e < chart_->expressions.size() ? &chart_->expressions[e] : nullptr;
  }

  static eval_error missing(expr_index e) {
    return eval_error{e == npos ? "missing expression" : "no expression #" + std::to_string(e)};
  }

  /// The JS message with what was being evaluated, both cut to a readable size.
  static eval_error located(const std::string& msg, std::string_view what, std::string_view text) {
    return eval_error{msg + " (" + std::string(what) + " `" + excerpt(trim(text), max_excerpt) +
                      "`)"};
  }

  result<value> evaluate(expr_index e, conversion how);
  result<void> initialize_from_expr(const data_decl& d);
  result<void> declare_value(const std::string& id, const js_input* in);
  result<void> fail_declared(const std::string& id, std::string msg);
  result<void> foreach_begin(expr_index array, foreach_state& st);
  result<void> foreach_step(const foreach_state& st, duk_size_t i);
  void foreach_end(const foreach_state& st) noexcept;
  result<void> start_heap();
  result<void> build_heap();
  bool create_heap();
  void destroy_heap() noexcept { release(ctx_, state_); }
  static void release(duk_context*& ctx, std::unique_ptr<heap_state>& state) noexcept;
  void discard_heap(const std::string& why) noexcept;
  value take_result(bool is_json);

  /**
   * Runs `fn(ctx)` as a Duktape protected call with a fresh time budget and native-stack floor.
   * On success leaves `fn`'s `nrets` results on the stack and returns nullopt; on failure leaves
   * nothing and returns the error message. `fn` must be longjmp-safe (see the file comment).
   */
  template <class Fn>
  std::optional<std::string> run(Fn&& fn, duk_idx_t nrets = 0);

  /// Arms the deadline and stack floor for one protected call; restores the previous ones.
  class budget_scope {
   public:
    budget_scope(heap_state& s, std::chrono::milliseconds budget) noexcept
        : s_(s), deadline_(s.deadline), floor_(stack_floor), active_(active_heap) {
      constexpr std::chrono::milliseconds longest = std::chrono::hours(24 * 365);
      const auto ms = std::clamp(budget, std::chrono::milliseconds(0), longest);
      s.deadline = script_clock::now() + ms;
      s.native_expired = false;
      const std::uintptr_t here = stack_position();
      stack_floor = here > native_stack_budget ? here - native_stack_budget : 1;
      active_heap = &s;
    }
    ~budget_scope() {
      s_.deadline = deadline_;
      stack_floor = floor_;
      active_heap = active_;
    }
    budget_scope(const budget_scope&) = delete;
    budget_scope& operator=(const budget_scope&) = delete;

   private:
    heap_state& s_;
    script_clock::time_point deadline_;
    std::uintptr_t floor_;
    heap_state* active_;
  };

  script_limits limits_;
  const statechart* chart_ = nullptr;
  datamodel_host* host_ = nullptr;
  std::unique_ptr<heap_state> state_;
  duk_context* ctx_ = nullptr;
  std::string broken_;            ///< Why there is no usable heap; empty when there is one.
  std::uint64_t generation_ = 0;  ///< Bumped whenever the heap is replaced.
  std::uint32_t foreach_depth_ = 0;
};

template <class Fn>
std::optional<std::string> ecmascript_datamodel::run(Fn&& fn, duk_idx_t nrets) {
  if (ctx_ == nullptr) return broken_.empty() ? "the ECMAScript datamodel is not set up" : broken_;
  using fn_type = std::remove_reference_t<Fn>;
  const duk_idx_t slots = std::max<duk_idx_t>(nrets, 1);  // One slot at least, for the error.
  try {
    budget_scope budget(*state_, limits_.time_budget);
    if (duk_safe_call(ctx_, &trampoline<fn_type>, &fn, 0, slots) == DUK_EXEC_SUCCESS) {
      if (nrets == 0) duk_pop(ctx_);
      return std::nullopt;
    }
    // Still under the same budget: a thrown object's toString() may be script code.
    duk_size_t len = 0;
    const char* msg = duk_safe_to_lstring(ctx_, -1, &len);
    std::string out = state_->native_expired  // Reported by Duktape as a stack overflow.
                          ? std::string("RangeError: execution timeout")
                          : std::string(msg, std::min<std::size_t>(len, max_message));
    duk_pop_n(ctx_, slots);
    return out.empty() ? std::string("script error") : out;
  } catch (const script_fatal& f) {
    discard_heap("the script engine failed (" + f.message +
                 "); the datamodel must be set up or restored again");
    return broken_;
  }
}

// ---- heap lifecycle ----------------------------------------------------------------------------

bool ecmascript_datamodel::create_heap() {
  state_ = std::make_unique<heap_state>(limits_.heap_limit, host_);
  try {
    ctx_ = duk_create_heap(heap_alloc, heap_realloc, heap_free, state_.get(), on_fatal);
  } catch (const script_fatal&) {
    ctx_ = nullptr;
  }
  if (ctx_ == nullptr) free_all_blocks(*state_);
  return ctx_ != nullptr;
}

void ecmascript_datamodel::release(duk_context*& ctx, std::unique_ptr<heap_state>& state) noexcept {
  if (ctx != nullptr) {
    try {
      duk_destroy_heap(ctx);
    } catch (const script_fatal&) {  // NOLINT(bugprone-empty-catch): the blocks are freed below.
    }
    ctx = nullptr;
  }
  if (state) free_all_blocks(*state);
  state.reset();
}

void ecmascript_datamodel::discard_heap(const std::string& why) noexcept {
  ctx_ = nullptr;  // Never call Duktape on this heap again, not even to destroy it.
  if (state_) free_all_blocks(*state_);
  state_.reset();
  ++generation_;
  try {
    broken_ = why;
  } catch (...) {
    broken_ = "the script engine failed";
  }
}

result<void> ecmascript_datamodel::start_heap() {
  destroy_heap();
  ++generation_;
  foreach_depth_ = 0;
  return build_heap();
}

result<void> ecmascript_datamodel::build_heap() {
  broken_.clear();
  if (host_ == nullptr) return eval_error{broken_ = "the ECMAScript datamodel is not set up"};
  if (!create_heap()) {
    broken_ = "could not create the script heap (heap_limit too small?)";
    return eval_error{broken_};
  }
  const std::string io = boost::json::serialize(host_->io_processors());
  const std::string& sid = host_->session_id();
  const std::string& nm = host_->session_name();
  auto err = run([&](duk_context* ctx) -> duk_ret_t {
    bootstrap(ctx, sid, nm, io);
    return 0;
  });
  if (err) {
    std::string why = "could not set up the ECMAScript datamodel: " + *err;
    destroy_heap();
    broken_ = why;
    return eval_error{std::move(why)};
  }
  return {};
}

// ---- evaluation --------------------------------------------------------------------------------

value ecmascript_datamodel::take_result(bool is_json) {
  value out;
  switch (duk_get_type(ctx_, -1)) {
    case DUK_TYPE_BOOLEAN: out = duk_get_boolean(ctx_, -1) != 0; break;
    case DUK_TYPE_NUMBER: out = number_value(duk_get_number(ctx_, -1)); break;
    case DUK_TYPE_STRING: {
      duk_size_t len = 0;
      const char* s = duk_get_lstring(ctx_, -1, &len);
      const std::string_view text(s, len);
      if (!is_json) out = boost::json::string(text);
      else if (auto v = parse_json(text)) out = std::move(*v);
      break;
    }
    default: out = nullptr; break;  // undefined, null (and nothing else once prepared)
  }
  duk_pop(ctx_);
  return out;
}

result<value> ecmascript_datamodel::evaluate(expr_index e, conversion how) {
  const expression* x = find(e);
  if (x == nullptr) return missing(e);
  bool is_json = false;
  auto err = run(
      [&](duk_context* ctx) -> duk_ret_t {
        push_compiled(ctx, 'v', e, x->text);
        duk_call(ctx, 0);
        if (how == conversion::to_bool) duk_push_boolean(ctx, duk_to_boolean(ctx, -1));
        else if (how == conversion::to_string) duk_to_string(ctx, -1);
        else is_json = prepare_for_json(ctx);
        return 1;
      },
      1);
  if (err) return located(*err, "expression", x->text);
  return take_result(is_json);
}

result<void> ecmascript_datamodel::declare_value(const std::string& id, const js_input* in) {
  auto err = run([&](duk_context* ctx) -> duk_ret_t {
    push_api(ctx, "declare");
    duk_push_lstring(ctx, id.data(), id.size());
    if (in != nullptr) push_input(ctx, *in);
    else duk_push_undefined(ctx);
    duk_call(ctx, 2);
    return 0;
  });
  if (err) return eval_error{*err + " (<data id=\"" + excerpt(id, max_excerpt) + "\">)"};
  return {};
}

result<void> ecmascript_datamodel::fail_declared(const std::string& id, std::string msg) {
  (void)declare_value(id, nullptr);  // The variable exists, unbound (test 277).
  return eval_error{std::move(msg)};
}

result<void> ecmascript_datamodel::initialize_from_expr(const data_decl& d) {
  const expression* x = find(d.expr);
  if (x == nullptr) return fail_declared(d.id, missing(d.expr).message);
  auto err = run([&](duk_context* ctx) -> duk_ret_t {
    push_api(ctx, "declare");
    duk_push_lstring(ctx, d.id.data(), d.id.size());
    push_compiled(ctx, 'v', d.expr, x->text);
    duk_call(ctx, 0);
    duk_call(ctx, 2);
    return 0;
  });
  if (err) {
    return fail_declared(d.id, located(*err, "<data id=\"" + d.id + "\">", x->text).message);
  }
  return {};
}

// ---- foreach -----------------------------------------------------------------------------------

result<void> ecmascript_datamodel::foreach(expr_index array, expr_index item, expr_index index,
                                           const std::function<bool()>& body) {
  foreach_state st;
  st.item = find(item);
  st.item_e = item;
  st.index = index == npos ? nullptr : find(index);
  st.index_e = index;
  st.slot = foreach_depth_;
  if (st.item == nullptr) return missing(item);
  if (index != npos && st.index == nullptr) return missing(index);
  if (auto r = foreach_begin(array, st); !r) {
    foreach_end(st);  // The copy may already sit in the stash.
    return r;
  }
  const std::uint64_t generation = generation_;
  ++foreach_depth_;
  struct end_guard {
    ecmascript_datamodel& self;
    const foreach_state& st;
    std::uint64_t generation;
    ~end_guard() {
      if (self.generation_ != generation) return;  // A new heap: nothing of ours is left.
      --self.foreach_depth_;
      self.foreach_end(st);
    }
  } guard{*this, st, generation};
  for (duk_size_t i = 0; i < st.length; ++i) {
    if (generation_ != generation || ctx_ == nullptr) {
      return eval_error{"foreach: the datamodel was reset while iterating"};
    }
    if (auto r = foreach_step(st, i); !r) return r;
    if (!body()) break;
  }
  return {};
}

result<void> ecmascript_datamodel::foreach_begin(expr_index array, foreach_state& st) {
  const expression* arr = find(array);
  if (arr == nullptr) return missing(array);
  const std::string_view item_name = trim(st.item->text);
  const std::string_view index_name =
      st.index != nullptr ? trim(st.index->text) : std::string_view();
  const bool create_item = is_plain_identifier(item_name);
  const bool create_index = is_plain_identifier(index_name);
  auto err = run([&](duk_context* ctx) -> duk_ret_t {
    // Check the locations compile before anything runs: a bad item is an error even for [].
    push_compiled(ctx, 'l', st.item_e, st.item->text);
    if (st.index != nullptr) push_compiled(ctx, 'l', st.index_e, st.index->text);
    push_stashed(ctx, "fe");
    push_api(ctx, "copyArray");
    push_compiled(ctx, 'v', array, arr->text);
    duk_call(ctx, 0);
    duk_call(ctx, 1);  // [... fe copy]
    st.length = duk_get_length(ctx, -1);
    duk_put_prop_index(ctx, -2, st.slot);
    for (int k = 0; k < 2; ++k) {
      const std::string_view n = k == 0 ? item_name : index_name;
      if (!(k == 0 ? create_item : create_index)) continue;
      push_api(ctx, "ensure");  // Undeclared item/index become new globals (tests 150, 151).
      duk_push_lstring(ctx, n.data(), n.size());
      duk_call(ctx, 1);
      duk_pop(ctx);
    }
    return 0;
  });
  if (err) return located(*err, "foreach", arr->text);
  return {};
}

result<void> ecmascript_datamodel::foreach_step(const foreach_state& st, duk_size_t i) {
  auto err = run([&](duk_context* ctx) -> duk_ret_t {
    push_compiled(ctx, 'l', st.item_e, st.item->text);
    duk_push_global_object(ctx);
    push_stashed(ctx, "fe");
    duk_get_prop_index(ctx, -1, st.slot);
    duk_get_prop_index(ctx, -1, static_cast<duk_uarridx_t>(i));
    duk_replace(ctx, -3);
    duk_pop(ctx);  // [setter global item]
    duk_call_method(ctx, 1);
    if (st.index == nullptr) return 0;
    push_compiled(ctx, 'l', st.index_e, st.index->text);
    duk_push_global_object(ctx);
    duk_push_number(ctx, static_cast<double>(i));
    duk_call_method(ctx, 1);
    return 0;
  });
  if (err) return located(*err, "foreach item/index", st.item->text);
  return {};
}

void ecmascript_datamodel::foreach_end(const foreach_state& st) noexcept {
  try {
    (void)run([&](duk_context* ctx) -> duk_ret_t {
      push_stashed(ctx, "fe");
      duk_del_prop_index(ctx, -1, st.slot);
      return 0;
    });
  } catch (...) {  // NOLINT(bugprone-empty-catch): only the error message could throw.
  }
}

// ---- snapshots ---------------------------------------------------------------------------------

value ecmascript_datamodel::save() {
  if (ctx_ == nullptr && broken_.empty()) return boost::json::object();  // Never set up.
  auto err = run(
      [&](duk_context* ctx) -> duk_ret_t {
        push_api(ctx, "save");
        duk_call(ctx, 0);
        return 1;
      },
      1);
  if (err) return nullptr;  // Cannot report: an unusable snapshot rather than a partial one.
  value v = take_result(true);
  return v.is_object() ? v : value(nullptr);
}

result<void> ecmascript_datamodel::restore(const value& saved) {
  if (!saved.is_object()) return eval_error{"restore: the saved datamodel is not a JSON object"};
  if (chart_ == nullptr) return eval_error{"restore: the ECMAScript datamodel is not set up"};
  for (const auto& kv : saved.as_object()) {
    if (is_system_name(kv.key())) {
      return eval_error{"restore: " + std::string(kv.key()) + " is a read-only system variable"};
    }
  }
  // The snapshot goes into a fresh heap, so nothing of the current state survives it; the
  // current heap stays in place until that has worked.
  auto in = to_js_input(saved, limits_.heap_limit);
  if (!in) return eval_error{"restore: " + in.error().message};
  duk_context* old_ctx = std::exchange(ctx_, nullptr);
  std::unique_ptr<heap_state> old_state = std::move(state_);
  std::string old_broken = std::move(broken_);
  std::optional<std::string> err;
  if (auto r = build_heap(); !r) err = r.error().message;
  if (!err) {
    err = run([&](duk_context* ctx) -> duk_ret_t {
      push_api(ctx, "restore");
      push_input(ctx, *in);
      duk_call(ctx, 1);
      return 0;
    });
  }
  if (err) {
    destroy_heap();
    ctx_ = old_ctx;
    state_ = std::move(old_state);
    broken_ = std::move(old_broken);
    return eval_error{"restore: " + *err};
  }
  release(old_ctx, old_state);
  ++generation_;
  foreach_depth_ = 0;
  return {};
}

}  // namespace

std::unique_ptr<datamodel> make_ecmascript_datamodel(script_limits limits) {
  return std::make_unique<ecmascript_datamodel>(limits);
}

detail::syntax_checker detail::make_ecmascript_syntax_checker(script_limits limits) {
  auto dm = std::make_shared<ecmascript_datamodel>(limits);
  return [dm](script_kind kind, std::string_view text) {
    return dm->syntax_error(static_cast<char>(kind), std::string(text));
  };
}

}  // namespace xsn::inline v0
