// The C++ machine builder: nodes -> the equivalent XState JSON config (inline callables under
// generated names) -> parse_xstate -> one binding of every name. Going through the JSON loader
// keeps one source of truth for the model and its checks; building happens once, not per event.
#include <xsn/runtime/builder.hpp>

#include <xsn/parse/xstate.hpp>

#include "runtime/xstate_actors.hpp"

#include <boost/json/serialize.hpp>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#endif

#include <cstdlib>
#include <set>
#include <string>

namespace xsn::inline v0 {

namespace {

std::string type_name(const std::type_info& t) {
#if __has_include(<cxxabi.h>)
  int status = 0;
  char* d = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status);
  if (status == 0 && d != nullptr) {
    std::string out(d);
    std::free(d);  // NOLINT(cppcoreguidelines-no-malloc)
    return out;
  }
#endif
  return t.name();
}

template <class Fn>
std::string context_mismatch(const detail::erased<Fn>& f, const std::type_info& context) {
  if (f.context == nullptr || *f.context == context) return {};
  return "takes a context of type `" + type_name(*f.context) + "`, but the machine's context is `" + type_name(context) + "`";
}

/// Emits the XState config of a machine's nodes, collecting inline callables and errors.
class emitter {
 public:
  emitter(const std::type_info& context, detail::typed_table& inline_table, std::vector<std::string>& errors)
      : context_(context), table_(inline_table), errors_(errors) {}

  value node(const detail::node_data& n, const std::string& path, bool root) {
    boost::json::object o;
    if (n.id) id_field(*n.id, path, root, o);
    if (n.kind) o["type"] = kind_name(*n.kind);
    if (n.kind == state_kind::history) history_fields(n, o);
    annotations(n, o);
    if (!n.entry.empty()) o["entry"] = actions(n.entry, path, "entry");
    if (!n.exit.empty()) o["exit"] = actions(n.exit, path, "exit");
    transitions(n.transitions, path, o);
    if (!n.invokes.empty()) o["invoke"] = invokes(n.invokes, path);
    if (!n.children.empty()) o["states"] = states(n, path);
    return o;
  }

 private:
  // A state's `id`; the root's is the machine's, so one given there is an error.
  void id_field(const std::string& id, const std::string& path, bool root, boost::json::object& o) {
    if (root) error(path, "the machine's id is the one given to `machine()`; `id` is for states");
    else o["id"] = id;
  }

  // A history state's `history` kind and its default `target`(s).
  static void history_fields(const detail::node_data& n, boost::json::object& o) {
    o["history"] = n.history == history_kind::deep ? "deep" : "shallow";
    if (n.history_target.size() == 1) o["target"] = n.history_target.front();
    else if (!n.history_target.empty()) o["target"] = boost::json::value_from(n.history_target);
  }

  // `initial`, `description`, `tags` and `output`, those that are set.
  static void annotations(const detail::node_data& n, boost::json::object& o) {
    if (n.initial) o["initial"] = *n.initial;
    if (!n.description.empty()) o["description"] = n.description;
    if (!n.tags.empty()) o["tags"] = boost::json::value_from(n.tags);
    if (n.output) o["output"] = *n.output;
  }

  // The `states` of `n`, by key; a key given twice is an error.
  value states(const detail::node_data& n, const std::string& path) {
    boost::json::object states;
    for (const auto& [key, child] : n.children) {
      if (states.contains(key)) {
        error(path, "duplicate child state '" + key + "'");
        continue;
      }
      states[key] = node(child->data(), path + "." + key, false);
    }
    return states;
  }

  static const char* kind_name(state_kind k) {
    switch (k) {
      case state_kind::atomic: return "atomic";
      case state_kind::compound: return "compound";
      case state_kind::parallel: return "parallel";
      case state_kind::final_state: return "final";
      case state_kind::history: return "history";
    }
    return "atomic";
  }

  void error(const std::string& path, const std::string& msg) { errors_.push_back("state '" + path + "': " + msg); }

  std::string fresh(const char* what, const std::string& path) {
    return "(inline " + std::string(what) + " " + std::to_string(counter_++) + " of " + path + ")";
  }

  value actions(const std::vector<action_ref>& list, const std::string& path, const char* where) {
    boost::json::array a;
    for (const auto& ref : list) {
      if (ref.fn()) {
        if (auto m = context_mismatch(*ref.fn(), context_); !m.empty()) error(path, std::string("an inline action in ") + where + " " + m);
        auto name = fresh("action", path);
        table_.actions.emplace(name, *ref.fn());
        a.emplace_back(name);
      } else if (ref.params().is_null()) {
        a.emplace_back(ref.name());
      } else {
        a.emplace_back(boost::json::object{{"type", ref.name()}, {"params", ref.params()}});
      }
    }
    return a;
  }

  value guard(const guard_ref& g, const std::string& path) {
    using k = guard_ref::kind;
    switch (g.type()) {
      case k::name:
        if (g.params().is_null()) return value(g.name());
        return boost::json::object{{"type", g.name()}, {"params", g.params()}};
      case k::inline_fn: {
        if (auto m = context_mismatch(*g.fn(), context_); !m.empty()) error(path, "an inline guard " + m);
        auto name = fresh("guard", path);
        table_.guards.emplace(name, *g.fn());
        return value(name);
      }
      case k::all:
      case k::any: {
        boost::json::array subs;
        for (const auto& c : g.children()) subs.push_back(guard(c, path));
        return boost::json::object{{"type", g.type() == k::all ? "and" : "or"}, {"guards", std::move(subs)}};
      }
      case k::negate:
        return boost::json::object{{"type", "not"}, {"guard", guard(g.children().front(), path)}};
      case k::state_in:
        return boost::json::object{{"type", "stateIn"}, {"state", g.name()}};
    }
    return nullptr;
  }

  value one(const transition& t, const std::string& path) {
    boost::json::object o;
    if (t.targets().size() == 1) o["target"] = t.targets().front();
    else if (!t.targets().empty()) o["target"] = boost::json::value_from(t.targets());
    if (t.guard_of()) o["guard"] = guard(*t.guard_of(), path);
    if (!t.actions_of().empty()) o["actions"] = actions(t.actions_of(), path, "a transition");
    if (t.reenters()) o["reenter"] = true;
    return o;
  }

  static void append(boost::json::object& o, std::string_view key, value t) {
    auto& slot = o[key];
    if (slot.is_null()) slot = boost::json::array();
    slot.as_array().push_back(std::move(t));
  }

  std::string delay_key(const transition& t, const std::string& path) {
    if (t.inline_delay()) {
      if (auto m = context_mismatch(*t.inline_delay(), context_); !m.empty()) error(path, "an inline delay " + m);
      auto name = fresh("delay", path);
      table_.delays.emplace(name, *t.inline_delay());
      return name;
    }
    if (!t.delay_name().empty()) return t.delay_name();
    if (t.delay().count() < 0) error(path, "a delay cannot be negative");
    return std::to_string(t.delay().count());
  }

  void transitions(const std::vector<transition>& list, const std::string& path, boost::json::object& o) {
    boost::json::object on, after;
    boost::json::array always, done;
    for (const auto& t : list) {
      switch (t.from()) {
        case transition::source::on:
          if (t.descriptor().empty()) error(path, "an `on` transition needs an event descriptor; use `always` for eventless ones");
          else append(on, t.descriptor(), one(t, path));
          break;
        case transition::source::always: always.push_back(one(t, path)); break;
        case transition::source::after: append(after, delay_key(t, path), one(t, path)); break;
        case transition::source::on_done: done.push_back(one(t, path)); break;
      }
    }
    if (!on.empty()) o["on"] = std::move(on);
    if (!after.empty()) o["after"] = std::move(after);
    if (!always.empty()) o["always"] = std::move(always);
    if (!done.empty()) o["onDone"] = std::move(done);
  }

  value invokes(const std::vector<invoke_config>& list, const std::string& path) {
    boost::json::array a;
    for (const auto& i : list) {
      boost::json::object o;
      o["src"] = i.src();
      if (!i.id_of().empty()) o["id"] = i.id_of();
      if (!i.system_id_of().empty()) o["systemId"] = i.system_id_of();
      if (i.input_of()) o["input"] = *i.input_of();
      auto handlers = [&](const std::vector<transition>& ts) {
        boost::json::array out;
        for (const auto& t : ts) out.push_back(one(t, path));
        return out;
      };
      if (!i.done_of().empty()) o["onDone"] = handlers(i.done_of());
      if (!i.error_of().empty()) o["onError"] = handlers(i.error_of());
      a.push_back(std::move(o));
    }
    return a;
  }

  const std::type_info& context_;
  detail::typed_table& table_;
  std::vector<std::string>& errors_;
  std::size_t counter_ = 0;
};

template <class Erased>
std::optional<std::string> check(const char* what, const std::string& name, const Erased& f, const std::type_info& context) {
  if (auto m = context_mismatch(f, context); !m.empty()) return std::string(what) + " '" + name + "' " + m;
  return std::nullopt;
}

/// Binds each of `names` (`what`: "action", "guard", "delay") in slot order: from `table`, whose
/// callables are checked against `context` (kept erased for a typed context, else wrapped by
/// `wrap` for JSON), else, for JSON contexts only, from `find_untyped(name)`.
template <class Table, class Typed, class Untyped, class FindUntyped, class Wrap>
void bind_names(const char* what, const std::vector<std::string>& names, const Table& table, const std::type_info& context,
                bool typed, Typed& typed_out, Untyped& untyped_out, FindUntyped find_untyped, Wrap wrap,
                detail::bind_problems& problems) {
  for (const auto& n : names) {
    if (auto it = table.find(n); it != table.end()) {
      if (auto e = check(what, n, it->second, context)) {
        problems.add(*e);
        continue;
      }
      auto fn = it->second.fn;
      if (typed) typed_out.push_back(std::move(fn));
      else untyped_out.emplace_back(wrap(std::move(fn)));
    } else if (const auto* f = find_untyped(n); f != nullptr && !typed) {
      untyped_out.push_back(*f);
    } else {
      problems.add(std::string(what) + " '" + n + "' is not provided");
    }
  }
}

}  // namespace

void detail::node_data::merge(const node_data& o) {
  if (o.kind) kind = o.kind;
  if (o.kind == state_kind::history) {
    history = o.history;
    history_target = o.history_target;
  }
  if (o.id) id = o.id;
  if (o.initial) initial = o.initial;
  entry.insert(entry.end(), o.entry.begin(), o.entry.end());
  exit.insert(exit.end(), o.exit.begin(), o.exit.end());
  transitions.insert(transitions.end(), o.transitions.begin(), o.transitions.end());
  invokes.insert(invokes.end(), o.invokes.begin(), o.invokes.end());
  children.insert(children.end(), o.children.begin(), o.children.end());
  if (o.output) output = o.output;
  tags.insert(tags.end(), o.tags.begin(), o.tags.end());
  if (!o.description.empty()) description = o.description;
}

result<std::shared_ptr<const bound_implementations>> detail::bind_erased(
    const statechart& chart, const typed_table& table, const std::type_info& context,
    std::function<std::unique_ptr<context_holder>()> make_context, const implementations* untyped) {
  if (!chart.xstate) return eval_error{"not an XState chart: implementations bind only to XState charts"};
  auto b = std::make_shared<bound_implementations>();
  b->program = chart.xstate.get();
  const auto& p = *chart.xstate;
  const bool typed = static_cast<bool>(make_context);
  const auto named = [untyped](auto find) {
    return [untyped, find](const std::string& n) { return untyped != nullptr ? (untyped->*find)(n) : nullptr; };
  };
  detail::bind_problems problems;  // all of them, not the first: one round of fixes
  bind_names("action", p.action_names, table.actions, context, typed, b->typed_actions, b->actions,
             named(&implementations::find_action), [](auto fn) {
               return [fn](value& c, const event& ev, const value& ps, action_scope& s) { fn(&c, ev, ps, s); };
             }, problems);
  bind_names("guard", p.guard_names, table.guards, context, typed, b->typed_guards, b->guards,
             named(&implementations::find_guard), [](auto fn) {
               return [fn](const value& c, const event& ev, const value& ps) { return fn(&c, ev, ps); };
             }, problems);
  bind_names("delay", p.delay_names, table.delays, context, typed, b->typed_delays, b->delays,
             named(&implementations::find_delay), [](auto fn) {
               return [fn](const value& c, const event& ev) { return fn(&c, ev); };
             }, problems);
  if (untyped != nullptr) {
    bind_actors(p, *untyped, *b, problems);
  } else {
    for (const auto& name : p.actor_names) problems.add("actor '" + name + "' is not provided");
  }
  if (auto e = problems.error()) return *e;
  b->make_context = std::move(make_context);
  return std::shared_ptr<const bound_implementations>(std::move(b));
}

namespace {

// The errors of machine `machine_id` as one, a line each.
eval_error join_errors(const std::string& machine_id, const std::vector<std::string>& list) {
  std::string out;
  for (const auto& e : list) out += (out.empty() ? "" : "\n") + machine_id + ": " + e;
  return eval_error{out};
}

// The emitted `config` with the machine's `id` (first, for readability) and its `context`.
value with_id_and_context(value config, const std::string& machine_id, const value& context) {
  auto& o = config.as_object();
  o["id"] = machine_id;
  if (!context.is_null()) o["context"] = context;
  boost::json::object ordered;
  ordered["id"] = machine_id;
  for (const auto& kv : o)
    if (kv.key() != "id") ordered[kv.key()] = kv.value();
  return ordered;
}

// Adds the inline callables to `table`, over named ones of the same name.
void merge_inline(detail::typed_table& table, detail::typed_table& inline_table) {
  for (auto& [k, v] : inline_table.actions) table.actions.insert_or_assign(k, std::move(v));
  for (auto& [k, v] : inline_table.guards) table.guards.insert_or_assign(k, std::move(v));
  for (auto& [k, v] : inline_table.delays) table.delays.insert_or_assign(k, std::move(v));
}

}  // namespace

result<built_machine> detail::build_machine(const std::string& machine_id, const node_data& root, const value& context,
                                            const std::type_info& context_type, const implementations* named,
                                            const typed_table* typed_named,
                                            std::function<std::unique_ptr<context_holder>()> make_context) {
  std::vector<std::string> errors;
  typed_table table;
  if (typed_named != nullptr) table = *typed_named;
  typed_table inline_table;
  emitter em(context_type, inline_table, errors);
  value config;
  try {
    config = em.node(root, machine_id, true);
  } catch (const std::exception& e) {
    errors.push_back(std::string("internal error: ") + e.what());
  }
  if (machine_id.empty()) errors.insert(errors.begin(), "the machine id cannot be empty");
  if (!errors.empty()) return join_errors(machine_id, errors);
  config = with_id_and_context(std::move(config), machine_id, context);

  auto parsed = parse_xstate(boost::json::serialize(config), machine_id);
  if (!parsed) {
    for (const auto& d : parsed.errors) errors.push_back(d.message);
    return join_errors(machine_id, errors);
  }
  merge_inline(table, inline_table);
  auto bound = bind_erased(*parsed.chart, table, context_type, std::move(make_context), named);
  if (!bound) return join_errors(machine_id, {bound.error().message});
  return built_machine{parsed.chart, *bound, std::move(config)};
}

}  // namespace xsn::inline v0
