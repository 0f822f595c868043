// Sessions driven from several threads (CI also runs this file under ThreadSanitizer).
#include <xsn/runtime/session.hpp>

#include "catch.hpp"

#include <xsn/config.hpp>
#include <xsn/parse/scxml.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/serialize.hpp>

#include <future>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using states = std::vector<std::string>;

std::shared_ptr<const xsn::statechart> chart(const std::string& body, const std::string& attrs = "") {
  auto r = xsn::parse_scxml("<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\"" + attrs + ">" + body + "</scxml>",
                            "concurrency.scxml");
  if (!r) FAIL(r.errors.front().to_string());
  return r.chart;
}

}  // namespace

#if XSN_WITH_ECMASCRIPT
TEST_CASE("session_concurrency: async_send from several threads onto a strand, every send completes once") {
  boost::asio::io_context ioc;
  xsn::manual_clock clk;  // not used by this machine (no delays): only the strand runs the session
  auto strand = boost::asio::make_strand(ioc);
  xsn::session s(chart(R"(<datamodel><data id="n" expr="0"/></datamodel>
    <state id="s"><transition event="add"><assign location="n" expr="n + 1"/></transition></state>)",
                       " datamodel=\"ecmascript\""),
                 strand, clk);
  std::promise<void> started;
  boost::asio::post(strand, [&] {
    s.start();
    started.set_value();
  });
  auto guard = boost::asio::make_work_guard(ioc);
  std::thread runner([&] { ioc.run(); });
  started.get_future().get();
  constexpr int per_thread = 200;
  auto produce = [&] {
    std::vector<std::future<std::tuple<std::error_code, states>>> done;
    for (int i = 0; i < per_thread; ++i) done.push_back(s.async_send(xsn::event("add"), boost::asio::use_future));
    int ok = 0;
    for (auto& f : done) ok += std::get<0>(f.get()) ? 0 : 1;
    return ok;
  };
  auto a = std::async(std::launch::async, produce);
  auto b = std::async(std::launch::async, produce);
  const int ok = a.get() + b.get();
  std::promise<std::string> n;
  boost::asio::post(strand, [&] { n.set_value(boost::json::serialize(s.snapshot().as_object()["context"])); });
  const auto count = n.get_future().get();
  guard.reset();
  runner.join();
  CHECK(ok == 2 * per_thread);
  CHECK(count == "{\"n\":" + std::to_string(2 * per_thread) + "}");
}
#endif
