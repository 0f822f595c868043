#pragma once
/// \file The event that flows through queues, the bus and `_event`.
#include <xsn/runtime/value.hpp>

#include <cstdint>
#include <string>

namespace xsn {

/// SCXML's `_event.type`.
enum class event_type : std::uint8_t { platform, internal, external };

/// An event, as the W3C `_event` system variable describes it.
struct event {
  std::string name;                          ///< Dot-separated name, e.g. `done.state.s1`.
  event_type type = event_type::external;    ///< `_event.type`.
  std::string sendid;                        ///< `_event.sendid`, empty when none.
  std::string origin;                        ///< `_event.origin`, empty when none.
  std::string origintype;                    ///< `_event.origintype`, empty when none.
  std::string invokeid;                      ///< `_event.invokeid`, empty when none.
  value data;                                ///< `_event.data`, null when none.
  /// Interned name of the chart this event was resolved against (`npos` when unknown).
  /// Set by `statechart::resolve`; lets the interpreter match without string comparison.
  std::uint32_t name_id = UINT32_MAX;
  /// The chart `name_id` was resolved against (set by `statechart::resolve`); when it is the
  /// session's chart, `name_id` is trusted without looking at `name`.
  const void* resolved_by = nullptr;

  event() = default;
  /// An external event with a name and optional data.
  explicit event(std::string n, value d = nullptr) : name(std::move(n)), data(std::move(d)) {}
};

}  // namespace xsn
