#include <xsn/bus/event_bus.hpp>

namespace xsn::inline v0 {

subscription::~subscription() = default;
event_bus::~event_bus() = default;

std::error_code event_bus::check_address(std::string_view address) noexcept {
  if (address.empty()) return errc::invalid_address;
  return {};
}

std::unique_ptr<subscription> event_bus::subscribe(std::string_view address,
                                                   subscription_options options,
                                                   std::error_code& ec) {
  ec.clear();
  if (address.empty() || address.front() == '$') {
    ec = errc::invalid_address;
    return nullptr;
  }
  if (options.capacity == 0 || options.capacity > subscription_options::max_capacity) {
    ec = errc::invalid_argument;
    return nullptr;
  }
  auto sub = do_subscribe(address, options, ec);
  if (ec) return nullptr;
  return sub;
}

std::unique_ptr<subscription> event_bus::subscribe(std::string_view address,
                                                   subscription_options options) {
  std::error_code ec;
  auto sub = subscribe(address, options, ec);
  if (ec) throw std::system_error(ec, "xsn::event_bus::subscribe");
  return sub;
}

std::error_code event_bus::publish(bus_message&& msg) {
  if (auto ec = check_address(msg.address)) return ec;
  return do_publish(std::move(msg));
}

std::error_code event_bus::reply(const bus_message& request, xsn::event ev) {
  if (request.reply_to.empty() || request.correlation_id == 0) return errc::invalid_address;
  bus_message answer(request.reply_to, std::move(ev));
  answer.correlation_id = request.correlation_id;
  return do_publish(std::move(answer));
}

}  // namespace xsn::inline v0
