#pragma once
/// \file The event that flows through queues, the bus and `_event`.
#include <xsn/core/value.hpp>

#include <cstdint>
#include <string>
#include <utility>

namespace xsn::inline v0 {

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

  /// Copies every field.
  event(const event&) = default;
  /// Copies every field.
  event& operator=(const event&) = default;
  /// Moves every field; as with `std::string`, the moved-from strings are left empty. Empty
  /// strings (most of `sendid`..`invokeid`, usually) are not touched, which makes an event about
  /// a third cheaper to move through queues and the bus.
  event(event&& o) noexcept
      : name(std::move(o.name)), type(o.type), sendid(take(o.sendid)), origin(take(o.origin)),
        origintype(take(o.origintype)), invokeid(take(o.invokeid)), data(std::move(o.data)),
        name_id(o.name_id), resolved_by(o.resolved_by) {}
  /// Moves every field, as the move constructor does.
  event& operator=(event&& o) noexcept(noexcept(std::declval<value&>() = std::declval<value&&>())) {
    name = std::move(o.name);
    type = o.type;
    assign(sendid, o.sendid);
    assign(origin, o.origin);
    assign(origintype, o.origintype);
    assign(invokeid, o.invokeid);
    data = std::move(o.data);
    name_id = o.name_id;
    resolved_by = o.resolved_by;
    return *this;
  }
  ~event() = default;

  /// `std::move(s)`, except that an empty `s` is not read further (a moved `std::string` copies
  /// its small buffer even when it holds nothing).
  static std::string take(std::string& s) noexcept { return s.empty() ? std::string() : std::move(s); }
  /// `to = std::move(from)`, skipping the copy when `from` is empty.
  static void assign(std::string& to, std::string& from) noexcept {
    if (from.empty()) {
      to.clear();
    } else {
      to = std::move(from);
    }
  }
};

}  // namespace xsn::inline v0
