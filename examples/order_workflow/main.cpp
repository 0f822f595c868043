// An order workflow designed as an XState v5 machine (order.json, as the Stately editor exports
// it) whose actions, guards and delays are C++: the `setup()` of XState, done with
// `xsn::implementations`. Three orders run on simulated time (a manual clock), so the program is
// fast and repeatable; it checks where each order ends and exits non-zero when one goes wrong.
#include <xsn/parse/xstate.hpp>
#include <xsn/core/clock.hpp>
#include <xsn/runtime/implementations.hpp>
#include <xsn/runtime/session.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

std::filesystem::path find_document(const char* argv0) {
  auto beside = std::filesystem::path(argv0).parent_path() / "order.json";
  if (std::filesystem::exists(beside)) return beside;
  return std::filesystem::path(XSN_EXAMPLE_SOURCE_DIR) / "order.json";
}

/// What the C++ side of the business did, for the checks at the end.
struct backend {
  int authorizations = 0;
  int invoices = 0;
  int notifications = 0;
  int refunds = 0;
};

/// The machine's named actions, guards and delays, bound to C++ once per chart.
xsn::implementations order_logic(backend& b) {
  xsn::implementations impl;
  impl.action("addItem", [](xsn::value& ctx, const xsn::event& ev, const xsn::value&) {
    auto& c = ctx.as_object();
    const auto& item = ev.data.as_object();
    c["items"].as_array().push_back(item.at("sku"));
    c["total"] = c["total"].to_number<double>() + item.at("price").to_number<double>();
  });
  impl.action("recordAttempt", [](xsn::value& ctx, const xsn::event&, const xsn::value&) {
    auto& c = ctx.as_object();
    c["attempts"] = c["attempts"].to_number<std::int64_t>() + 1;
  });
  impl.action("requestAuthorization", [&b](xsn::value& ctx, const xsn::event&, const xsn::value& params) {
    ++b.authorizations;
    std::cout << "  authorize " << ctx.at("total").to_number<double>() << " with "
              << json::serialize(params.at("provider")) << "\n";
  });
  impl.action("issueInvoice", [&b](xsn::value&, const xsn::event&, const xsn::value&) { ++b.invoices; });
  impl.action("notifyCustomer", [&b](xsn::value&, const xsn::event&, const xsn::value&) { ++b.notifications; });
  impl.action("refund", [&b](xsn::value&, const xsn::event&, const xsn::value&) { ++b.refunds; });
  impl.guard("hasItems", [](const xsn::value& ctx, const xsn::event&, const xsn::value&) {
    return !ctx.at("items").as_array().empty();
  });
  impl.guard("canRetry", [](const xsn::value& ctx, const xsn::event&, const xsn::value& params) {
    return ctx.at("attempts").to_number<std::int64_t>() < params.at("max").to_number<std::int64_t>();
  });
  impl.delay("paymentTimeout", 30s);
  return impl;
}

/// One order: a session of the shared chart on the shared clock.
class order {
 public:
  order(std::shared_ptr<const xsn::statechart> chart, std::shared_ptr<const xsn::bound_implementations> bound,
        boost::asio::io_context& ioc, xsn::manual_clock& clk)
      : ioc_(ioc), session_(chart, ioc.get_executor(), clk, options(std::move(bound))) {
    session_.start();
  }
  /// Sends `type` with `fields` (XState's event object) and runs it to completion.
  void send(const std::string& type, json::object fields = {}) {
    fields["type"] = type;
    if (auto ec = session_.send(xsn::event(type, std::move(fields)))) std::cout << "  " << type << ": " << ec.message() << "\n";
    settle();
  }
  /// Lets the executor run what timers and sends queued.
  void settle() {
    ioc_.restart();
    ioc_.poll();
  }
  std::string where() const {
    auto v = xsn::state_value_of(session_.chart(), [&](xsn::state_index s) { return session_.is_active(s); });
    return json::serialize(v);
  }
  const xsn::value& context() { return *xsn::xstate_context(session_.datamodel()); }
  bool running() const { return session_.running(); }

 private:
  static xsn::session_options options(std::shared_ptr<const xsn::bound_implementations> bound) {
    xsn::session_options o;
    o.make_datamodel = xsn::xstate_datamodel(std::move(bound));
    return o;
  }
  boost::asio::io_context& ioc_;
  xsn::session session_;
};

int failures = 0;
void expect(bool ok, const std::string& what) {
  std::cout << (ok ? "  ok: " : "  FAILED: ") << what << "\n";
  if (!ok) ++failures;
}

}  // namespace

int main(int, char** argv) {
  auto loaded = xsn::load_xstate(find_document(argv[0]));
  if (!loaded) {
    for (const auto& d : loaded.errors) std::cerr << d.to_string() << "\n";
    return 2;
  }
  backend b;
  auto bound = xsn::bind(*loaded.chart, order_logic(b));  // names looked up once, here
  if (!bound) {
    std::cerr << bound.error().message << "\n";
    return 2;
  }
  boost::asio::io_context ioc;
  xsn::manual_clock clk;

  std::cout << "order 1: two items, the card is declined once, then shipped and delivered\n";
  order o1(loaded.chart, *bound, ioc, clk);
  o1.send("CHECKOUT");  // refused by hasItems: the cart is empty
  expect(o1.where() == "\"cart\"", "an empty cart cannot check out: " + o1.where());
  o1.send("ADD_ITEM", {{"sku", "wafer-carrier"}, {"price", 120.5}});
  o1.send("ADD_ITEM", {{"sku", "foup-seal"}, {"price", 9.5}});
  o1.send("CHECKOUT");
  o1.send("PAYMENT_DECLINED");  // canRetry: attempt 2 re-enters authorizing
  clk.advance(20s);             // less than the timeout, which restarted on re-entry
  o1.settle();
  o1.send("PAYMENT_OK");
  expect(o1.where() == R"({"fulfilment":{"packing":"picking","invoicing":"drafting"}})", "fulfilment: " + o1.where());
  o1.send("PICKED");
  o1.send("INVOICE_SENT");
  expect(o1.where() == "\"shipped\"", "both regions done -> shipped: " + o1.where());
  o1.send("DELIVERED");
  expect(o1.where() == "\"delivered\"" && !o1.running(), "delivered, machine done");
  expect(o1.context().at("total").to_number<double>() == 130.0, "total 130, items " + json::serialize(o1.context().at("items")));
  expect(o1.context().at("attempts").to_number<std::int64_t>() == 2, "two payment attempts");

  std::cout << "order 2: the payment provider never answers\n";
  order o2(loaded.chart, *bound, ioc, clk);
  o2.send("ADD_ITEM", {{"sku", "reticle-pod"}, {"price", 450}});
  o2.send("CHECKOUT");
  clk.advance(30s);  // paymentTimeout
  o2.settle();
  expect(o2.where() == "\"cancelled\"", "cancelled after 30 s: " + o2.where());

  std::cout << "order 3: declined three times\n";
  order o3(loaded.chart, *bound, ioc, clk);
  o3.send("ADD_ITEM", {{"sku", "end-effector"}, {"price", 80}});
  o3.send("CHECKOUT");
  for (int i = 0; i < 3; ++i) o3.send("PAYMENT_DECLINED");
  expect(o3.where() == "\"cancelled\"", "cancelled after 3 attempts: " + o3.where());

  expect(b.authorizations == 2 + 1 + 3, "authorizations requested: " + std::to_string(b.authorizations));
  expect(b.invoices == 1 && b.notifications == 1, "one invoice and one notification");
  expect(b.refunds == 2, "two refunds (orders 2 and 3)");
  std::cout << (failures ? "FAILED\n" : "all orders ended as expected\n");
  return failures ? 1 : 0;
}
