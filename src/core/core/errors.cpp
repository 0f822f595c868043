#include <xsn/core/errors.hpp>

#include <string>

namespace xsn::inline v0 {
namespace {
class runtime_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "xsn"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::queue_full: return "queue is full";
      case errc::not_running: return "session is not running";
      case errc::not_on_executor: return "called from inside a macrostep";
      case errc::load_failed: return "document could not be loaded";
      case errc::bad_snapshot: return "snapshot is malformed or does not fit the chart";
      case errc::version_conflict: return "version conflict";
      case errc::store_full: return "store is full";
      case errc::invalid_argument: return "invalid argument";
      case errc::store_unavailable: return "store is unavailable";
      // bus
      case errc::invalid_address: return "invalid bus address";
      case errc::no_subscriber: return "no subscriber for the address";
      case errc::request_timeout: return "request timed out";
      case errc::bus_closed: return "bus is shut down";
      // breaker
      case errc::circuit_open: return "circuit breaker is open";
      case errc::already_exists: return "a machine with that id already exists";
      case errc::unknown_document: return "unknown document";
      case errc::unknown_machine: return "unknown machine";
      case errc::fenced: return "fenced: the partition's lease moved to another owner";
      case errc::store_closed: return "the store is closed";
      case errc::not_bound: return "the machine names implementations that were not bound";
      case errc::start_failed: return "the session failed while starting";
    }
    return "unknown xsn error";
  }
};
}  // namespace

const std::error_category& runtime_category() noexcept {
  static const runtime_category_impl cat;
  return cat;
}

}  // namespace xsn::inline v0
