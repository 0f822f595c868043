#pragma once
// Part of xsn_core (private): an event as JSON, for session snapshots (queued and delayed events)
// and the orchestrator's stored outboxes.
#include <xsn/core/event.hpp>

namespace xsn::inline v0::detail {

/// `{name, type, sendid?, origin?, origintype?, invokeid?, data?}`.
value event_to_json(const event& ev);
/// Reads what `event_to_json` wrote (`type` may be left out: external); false when `v` is not such
/// an object, `ev` then unspecified.
bool event_from_json(const value& v, event& ev);

}  // namespace xsn::inline v0::detail
