// libFuzzer target: snapshot JSON text -> session::restore_json on a fixed ECMAScript chart (data,
// parallel, deep history, delayed send, an inline invoked child); a restored session is
// snapshotted again.
#include "fixtures.hpp"

#include <xsn/core/clock.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto chart = xsn_fuzz::load(xsn_fuzz::scxml_machine, false);
  boost::asio::io_context ioc;
  xsn::manual_clock clk;
  xsn::session s(chart, ioc.get_executor(), clk);
  if (!s.restore_json(std::string_view(reinterpret_cast<const char*>(data), size))) {
    ioc.poll();
    (void)boost::json::serialize(s.snapshot());
    (void)s.send(xsn::event("next"));
    ioc.poll();
  }
  return 0;
}
