#pragma once
/// \file Error codes of xsn's runtime operations.
#include <system_error>

namespace xsn::inline v0 {

/// Errors returned (as `std::error_code`) by sessions and runtime components.
enum class errc {
  queue_full = 1,     ///< A bounded queue is at capacity and its policy is to fail.
  not_running,        ///< The session has not started or has already stopped.
  not_on_executor,    ///< A synchronous call was made from inside a macrostep.
  load_failed,        ///< A document could not be loaded.
  bad_snapshot,       ///< A snapshot is malformed or does not fit the chart.  // session
  // store
  version_conflict,   ///< A compare-and-set found another version than the one expected.
  store_full,         ///< A bounded store is at capacity (entries or bytes); the write failed.
  invalid_argument,   ///< An argument is out of its documented range (empty or long key, ...).
  store_unavailable,  ///< The store cannot be reached (a remote store's connection is down).
  // bus
  invalid_address,    ///< A bus address is empty or reserved (starts with `$`).
  no_subscriber,      ///< Nobody is subscribed to the address (or waits for the reply).
  request_timeout,    ///< A bus request got no reply in time.
  bus_closed,         ///< The bus has been shut down.
  // breaker
  circuit_open,       ///< A circuit breaker rejected the call (open, or no trial call left).
  // orchestrator
  already_exists,     ///< A machine with that id already exists.
  unknown_document,   ///< No document was added under that name.
  unknown_machine,    ///< No machine has that id.
  // distributed
  fenced,             ///< A write was refused: the partition's lease (fencing epoch) moved on.
  // store, again (appended: the values above stay as they were)
  store_closed,       ///< The store was closed (`state_store::async_close`).
  // session, again (appended)
  not_bound,          ///< An XState machine names implementations nobody bound (`session::start`).
  start_failed,       ///< A session ended in status `error` while starting (`session::error()`).
};

/// The category of `xsn::errc`.
const std::error_category& runtime_category() noexcept;

/// Makes an `std::error_code` from an `xsn::errc`.
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), runtime_category()}; }

}  // namespace xsn::inline v0

template <>
struct std::is_error_code_enum<xsn::errc> : std::true_type {};
