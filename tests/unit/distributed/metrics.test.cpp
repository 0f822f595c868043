#include "distributed/metrics.hpp"

#include "catch.hpp"

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// The Prometheus registry: exposition text (HELP/TYPE once per name, labels, cumulative buckets),
// registration errors, and updates from several threads.

using xsn::distributed::metrics_registry;

TEST_CASE("metrics: counters, gauges and labels render as text format 0.0.4") {
  metrics_registry reg;
  auto& reads = reg.add_counter("xsn_store_ops_total", "Store operations.", {{"op", "read"}});
  auto& writes = reg.add_counter("xsn_store_ops_total", "Store operations.", {{"op", "write"}});
  auto& owned = reg.add_gauge("xsn_partitions_owned", "Partitions this node holds.\nA \\ help.");
  auto& odd = reg.add_gauge("xsn_odd", "Label escaping.", {{"v", "a\"b\\c\nd"}});
  reads.inc();
  writes.inc(41);
  owned.set(3);
  owned.add(-0.5);
  odd.set(-1e300);
  CHECK(reads.value() == 1);
  CHECK(reg.render() ==
        "# HELP xsn_store_ops_total Store operations.\n"
        "# TYPE xsn_store_ops_total counter\n"
        "xsn_store_ops_total{op=\"read\"} 1\n"
        "xsn_store_ops_total{op=\"write\"} 41\n"
        "# HELP xsn_partitions_owned Partitions this node holds.\\nA \\\\ help.\n"
        "# TYPE xsn_partitions_owned gauge\n"
        "xsn_partitions_owned 2.5\n"
        "# HELP xsn_odd Label escaping.\n"
        "# TYPE xsn_odd gauge\n"
        "xsn_odd{v=\"a\\\"b\\\\c\\nd\"} -1e+300\n");
}

TEST_CASE("metrics: histograms have cumulative buckets, +Inf, sum and count") {
  metrics_registry reg;
  auto& h = reg.add_histogram("xsn_http_seconds", "Request latency.", {0.01, 0.1, 1}, {{"route", "send"}});
  h.observe(0.005);
  h.observe(0.01);  // `le`: on the bound counts in that bucket
  h.observe(0.5);
  h.observe(std::chrono::seconds(3));
  CHECK(reg.render() ==
        "# HELP xsn_http_seconds Request latency.\n"
        "# TYPE xsn_http_seconds histogram\n"
        "xsn_http_seconds_bucket{route=\"send\",le=\"0.01\"} 2\n"
        "xsn_http_seconds_bucket{route=\"send\",le=\"0.1\"} 2\n"
        "xsn_http_seconds_bucket{route=\"send\",le=\"1\"} 3\n"
        "xsn_http_seconds_bucket{route=\"send\",le=\"+Inf\"} 4\n"
        "xsn_http_seconds_sum{route=\"send\"} 3.515\n"
        "xsn_http_seconds_count{route=\"send\"} 4\n");
  auto& d = reg.add_histogram("xsn_default_seconds", "Default buckets.");
  CHECK(d.bounds() == xsn::distributed::default_latency_buckets());
  CHECK(d.bounds().size() == 13);
}

TEST_CASE("metrics: registration errors") {
  metrics_registry reg;
  reg.add_counter("xsn_a_total", "A.", {{"k", "1"}});
  CHECK_THROWS_AS(reg.add_counter("xsn_a_total", "A.", {{"k", "1"}}), std::invalid_argument);  // twice
  CHECK_THROWS_AS(reg.add_gauge("xsn_a_total", "A.", {{"k", "2"}}), std::invalid_argument);    // other type
  CHECK_THROWS_AS(reg.add_counter("xsn_a_total", "B.", {{"k", "2"}}), std::invalid_argument);  // other help
  CHECK_THROWS_AS(reg.add_counter("9lives", "x"), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_counter("a-b", "x"), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_counter("ok", "x", {{"bad-label", "v"}}), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_counter("ok", "x", {{"__reserved", "v"}}), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_counter("ok", "x", {{"k", "v"}, {"k", "w"}}), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_histogram("h", "x", {1, 0.5}), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_histogram("h", "x", {1, 2}, {{"le", "1"}}), std::invalid_argument);
  reg.add_counter("ns:ok_total", "Colons are fine in names.");
}

TEST_CASE("metrics: updates from several threads while rendering") {
  metrics_registry reg;
  auto& c = reg.add_counter("xsn_c_total", "C.");
  auto& g = reg.add_gauge("xsn_g", "G.");
  auto& h = reg.add_histogram("xsn_h_seconds", "H.");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.inc();
        g.add(1);
        h.observe(0.002);
      }
    });
  for (int i = 0; i < 20; ++i) CHECK_FALSE(reg.render().empty());
  for (auto& t : threads) t.join();
  CHECK(c.value() == 40000);
  CHECK(g.value() == 40000);
  CHECK(h.cumulative().back() == 40000);
  CHECK(h.cumulative().front() == 0);
  CHECK(h.cumulative()[1] == 40000);
}
