#pragma once
/// \file Structured logging of xsn's runtime components: silent unless the application enables it.
///
/// Each component logs through its own spdlog logger, named after it:
///
/// | Logger             | Component                                          |
/// |--------------------|----------------------------------------------------|
/// | `xsn.bus`          | `channel_event_bus`                                |
/// | `xsn.store`        | `memory_state_store`                               |
/// | `xsn.breaker`      | every `circuit_breaker` (transitions in the base)  |
/// | `xsn.orchestrator` | `orchestrator`                                     |
/// | `xsn.node`         | an `xsn serve` node (partitions, leases, streams)  |
/// | `xsn.session`      | every `session`: its diagnostics, when it has no `on_diagnostic` |
///
/// A component takes the logger registered under its name in spdlog's registry *when it is
/// constructed* (a session: when it first reports a diagnostic); when none is registered it is
/// silent (a check costs one relaxed atomic load).
/// Enable logging either with `configure` (no spdlog in your code) or by registering your own
/// spdlog loggers under these names (`spdlog::register_logger`), before creating the components.
/// `set_level` changes the level of registered loggers, and so of the components using them, at
/// any time.
///
/// A record's text is one word saying what happened, then `key=value` fields, e.g.
/// `transition breaker=store from=closed to=open at_ns=1000`; a value that is empty or holds a
/// space, `"`, `=` or a control character is written as a JSON string (`key="a b"`). State
/// changes, errors, overflow and shutdown are logged at `info` or above; what happens per event or
/// per call only at `debug` or `trace`, and formatted only when that level is enabled.
/// docs/components.md lists every record and its fields.
#include <cstdint>
#include <functional>
#include <string_view>

namespace xsn::inline v0::logging {

/// Severity of a record, as spdlog's levels.
enum class level : std::uint8_t { trace, debug, info, warn, error, critical, off };

/// `"trace"`, `"debug"`, `"info"`, `"warn"`, `"error"`, `"critical"` or `"off"`.
std::string_view to_string(level l) noexcept;

/// One record, as a `sink` receives it; the views are valid during the call only.
struct record {
  std::string_view logger;  ///< The component's logger, e.g. `xsn.bus`.
  level severity = level::info;  ///< How severe.
  std::string_view text;    ///< What happened, then `key=value` fields.
};

/// Receives records. Called from whichever thread logs, one record at a time per logger (each
/// logger serialises its calls), sometimes under a component's lock: it must neither log through
/// xsn's loggers nor call into xsn's components.
using sink = std::function<void(const record&)>;

/// True when `name` is one of the loggers listed above.
bool is_component(std::string_view name) noexcept;

/**
 * Registers every xsn logger in spdlog's registry (replacing loggers of those names) at `lvl`,
 * writing to `out`. Components created afterwards log; those created before keep the logger they
 * took. Throws `std::invalid_argument` when `out` is empty.
 */
void configure(level lvl, sink out);
/// As above for one logger; throws `std::invalid_argument` when `name` is not an xsn logger or
/// `out` is empty.
void configure(std::string_view name, level lvl, sink out);

/// Sets the level of every registered xsn logger (those of `configure` or your own).
void set_level(level lvl);
/// Sets the level of one registered xsn logger; false when none is registered under `name`.
bool set_level(std::string_view name, level lvl);

/// Sets every registered xsn logger to `off` and drops it from spdlog's registry: components
/// created before are silenced, those created afterwards are silent.
void reset();

}  // namespace xsn::inline v0::logging
