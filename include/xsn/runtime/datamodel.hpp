#pragma once
/// \file The datamodel interface: how a session evaluates expressions and runs scripts.
#include <xsn/model/statechart.hpp>
#include <xsn/core/event.hpp>
#include <xsn/core/value.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace xsn::inline v0 {

/// What a datamodel may ask of the session it belongs to.
class datamodel_host {
 public:
  virtual ~datamodel_host();
  /// `In(id)`: true when state `id` is active.
  virtual bool in_state(std::string_view id) const = 0;
  /// `_sessionid`.
  virtual const std::string& session_id() const = 0;
  /// `_name` (the `<scxml name>` attribute).
  virtual const std::string& session_name() const = 0;
  /// `_ioprocessors`: the supported event I/O processors with their `location`.
  virtual value io_processors() const = 0;
  /// Queues `ev` on the internal queue (XState's `raise` from a native action); false when the
  /// host cannot take it.
  virtual bool raise_internal(event ev) {
    (void)ev;
    return false;
  }
};

/// Budgets every script evaluation runs under.
struct script_limits {
  std::chrono::milliseconds time_budget{1000};  ///< Per evaluation (one expression or script).
  std::size_t heap_limit = 64u << 20;          ///< Bytes for the whole script heap.
};

/**
 * A datamodel evaluates the expressions of one session's chart by index.
 *
 * One instance per session, used from one thread at a time. Every evaluating call returns an
 * `eval_error` instead of throwing; the session turns it into `error.execution`.
 * Expressions are compiled lazily and cached by index.
 */
class datamodel {
 public:
  virtual ~datamodel();
  /// The `datamodel` attribute value this implements, e.g. `null` or `ecmascript`.
  virtual std::string_view name() const noexcept = 0;
  /// Binds to the chart and host; defines `_sessionid`, `_name`, `_ioprocessors`, `In()`.
  virtual result<void> setup(const statechart& chart, datamodel_host& host) = 0;
  /// Creates variable `d.id` with no value yet (late binding before first entry).
  virtual result<void> declare(const data_decl& d) = 0;
  /// Creates or sets variable `d.id` to its initial value (expr, inline text or src text).
  virtual result<void> initialize(const data_decl& d) = 0;
  /// Evaluates a condition to a boolean.
  virtual result<bool> eval_bool(expr_index e) = 0;
  /// Evaluates a value expression.
  virtual result<value> eval(expr_index e) = 0;
  /// Evaluates an expression and converts the result to a string (eventexpr, targetexpr, ...).
  virtual result<std::string> eval_string(expr_index e) = 0;
  /// `<assign location expr>`: evaluates `expr` and stores it at `location`.
  virtual result<void> assign(expr_index location, expr_index expr) = 0;
  /// `<assign location>` with inline content, or a value from outside (idlocation).
  virtual result<void> assign_value(expr_index location, const value& v) = 0;
  /// Runs a `<script>` body.
  virtual result<void> run_script(expr_index script) = 0;
  /// `<foreach>`: iterates a shallow copy of `array`, assigning `item` (and `index` unless
  /// npos) before each call of `body`; stops early when `body` returns false.
  virtual result<void> foreach(expr_index array, expr_index item, expr_index index,
                               const std::function<bool()>& body) = 0;
  /// Sets `_event` for the following evaluations.
  virtual void set_event(const event& ev) = 0;
  /// Converts inline content text (`<content>`, `<data>` body) to a value: JSON when it parses,
  /// otherwise a string with whitespace normalised.
  /// ECMAScript: well-formed XML (one root element) is `{"xsn:xml": "<markup/>"}`, a DOM in JS.
  virtual value content_value(std::string_view text) = 0;
  /// Serialises the datamodel's variables (for snapshots).
  virtual value save() = 0;
  /// Restores variables saved by `save`.
  virtual result<void> restore(const value& saved) = 0;
};

/// The only key of an XML value, `{"xsn:xml": "<markup/>"}` (see `datamodel::content_value`).
inline constexpr std::string_view xml_value_key = "xsn:xml";

/// The markup of an XML value; nullptr when `v` is not one.
inline const boost::json::string* xml_markup(const value& v) noexcept {
  const auto* o = v.if_object();
  if (o == nullptr || o->size() != 1 || o->begin()->key() != xml_value_key) return nullptr;
  return o->begin()->value().if_string();
}

/// Creates a datamodel for a session.
using datamodel_factory = std::function<std::unique_ptr<datamodel>()>;

/// The null datamodel: no variables; conditions are `In('id')` only.
std::unique_ptr<datamodel> make_null_datamodel();

/// The ECMAScript datamodel (Duktape), sandboxed under `limits`; nullptr when built without it.
std::unique_ptr<datamodel> make_ecmascript_datamodel(script_limits limits = {});

/// The datamodel named `name` (`null`, `ecmascript`); nullptr when unknown or not built.
std::unique_ptr<datamodel> make_datamodel(std::string_view name, script_limits limits = {});

}  // namespace xsn::inline v0
