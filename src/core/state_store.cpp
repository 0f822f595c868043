#include <xsn/store/state_store.hpp>

#include <system_error>

namespace xsn {

watch_handle::subscription::~subscription() = default;

state_store::~state_store() = default;

watch_handle state_store::watch(std::string prefix, watch_callback fn) {
  if (prefix.size() > max_key_size || !fn) {
    throw std::system_error(make_error_code(errc::invalid_argument), "state_store::watch");
  }
  return do_watch(std::move(prefix), std::move(fn));
}

void state_store::fail(get_handler handler, errc e) const {
  complete(std::move(handler), make_error_code(e), std::optional<stored_value>{});
}

void state_store::fail(write_handler handler, errc e) const {
  complete(std::move(handler), make_error_code(e), store_version{0});
}

void state_store::fail(list_handler handler, errc e) const {
  complete(std::move(handler), make_error_code(e), std::vector<entry>{});
}

}  // namespace xsn
