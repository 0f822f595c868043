/// \file The SCXML parser and compiler: document text to an immutable `statechart`.
#include <xsn/xsn.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <type_traits>

namespace {

/**
 * A generated document with exactly 1,000 `<state>` elements, three levels deep:
 * 10 groups `g<i>`, each with 9 compound states `g<i>_h<j>`, each with 10 atomic leaves
 * `g<i>_h<j>_s<k>` (10 + 90 + 900). Every leaf has an event transition to the next leaf (crossing
 * compound boundaries, so domains have to be computed) and a targetless one; every compound state
 * has an `<onentry>` with a `<raise>` and a transition to the next sibling compound state; groups
 * go round on `reset`.
 */
struct generated_doc {
  static constexpr int groups = 10;
  static constexpr int middles = 9;   // per group
  static constexpr int leaves = 10;   // per middle
  static constexpr int states = groups * (1 + middles * (1 + leaves));
  static_assert(states == 1000);

  std::string text;

  generated_doc() {
    text.reserve(256 * 1024);
    text += "<?xml version=\"1.0\"?>\n"
            "<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" version=\"1.0\" datamodel=\"null\" "
            "initial=\"g0\">\n";
    for (int g = 0; g < groups; ++g) {
      put("  <state id=\"", g, "\" initial=\"", g, 0, "\">\n");
      put("    <onentry><raise event=\"entered.", g, "\"/></onentry>\n");
      for (int h = 0; h < middles; ++h) {
        put("    <state id=\"", g, h, "\">\n");
        put("      <onentry><raise event=\"entered.", g, h, "\"/></onentry>\n");
        for (int s = 0; s < leaves; ++s) {
          // The next leaf in document order, wrapping round to the very first one.
          int ng = g, nh = h, ns = s + 1;
          if (ns == leaves) { ns = 0; ++nh; }
          if (nh == middles) { nh = 0; ++ng; }
          if (ng == groups) ng = 0;
          put("      <state id=\"", g, h, s, "\"><transition event=\"step\" target=\"", ng, nh, ns,
              "\"/><transition event=\"ping.*\"/></state>\n");
        }
        put("      <transition event=\"skip\" target=\"", g, (h + 1) % middles, "\"/>\n");
        put("    </state>\n");
      }
      put("    <transition event=\"reset\" target=\"", (g + 1) % groups, "\"/>\n");
      put("  </state>\n");
    }
    text += "</scxml>\n";
  }

 private:
  /// Appends markup pieces; a run of integers `g[, h[, s]]` becomes the id `g<g>_h<h>_s<s>`.
  template <class... Pieces>
  void put(const Pieces&... pieces) {
    int level = 0;
    auto one = [&](const auto& p) {
      if constexpr (std::is_same_v<std::decay_t<decltype(p)>, int>) {
        text += level == 0 ? "g" : level == 1 ? "_h" : "_s";
        text += std::to_string(p);
        ++level;
      } else {
        text += p;
        level = 0;
      }
    };
    (one(pieces), ...);
  }
};

void parse_scxml_1000_states(benchmark::State& state) {
  const generated_doc doc;  // built once, outside the timed loop
  for (auto _ : state) {
    auto r = xsn::parse_scxml(doc.text, "gen.scxml");
    if (!r) {
      const auto msg = "parse failed: " + (r.errors.empty() ? std::string("no chart")
                                                             : r.errors.front().to_string());
      state.SkipWithError(msg.c_str());
      break;
    }
    // `states` holds the `<scxml>` root at index 0 as well.
    if (r.chart->states.size() != generated_doc::states + 1) {
      state.SkipWithError("parsed chart does not have 1,000 states");
      break;
    }
    benchmark::DoNotOptimize(r.chart);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * generated_doc::states);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(doc.text.size()));
}

}  // namespace

BENCHMARK(parse_scxml_1000_states)->Name("parse/scxml_1000_states")->Unit(benchmark::kMicrosecond);
