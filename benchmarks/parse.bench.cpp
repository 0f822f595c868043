/// \file The SCXML and XState parsers and compilers: document text to an immutable `statechart`.
#include <xsn/parse/xstate.hpp>
#include <xsn/xsn.hpp>

#include "bench_machines.hpp"

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

using xsn_bench::generated_doc;

/// Parses the generated document in `f` per iteration; SCXML's chart holds the `<scxml>` root at
/// index 0 as well, XState's a state above the machine's root node and the root itself.
void parse_1000_states(benchmark::State& state, generated_doc::format f) {
  const generated_doc doc(f);  // built once, outside the timed loop
  const bool xstate = f == generated_doc::format::xstate;
  const std::size_t expected = generated_doc::states + (xstate ? 2 : 1);
  for (auto _ : state) {
    auto r = xstate ? xsn::parse_xstate(doc.text, "gen.json") : xsn::parse_scxml(doc.text, "gen.scxml");
    if (!r) {
      const auto msg = "parse failed: " + (r.errors.empty() ? std::string("no chart")
                                                             : r.errors.front().to_string());
      state.SkipWithError(msg.c_str());
      break;
    }
    if (r.chart->states.size() != expected) {
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

BENCHMARK_CAPTURE(parse_1000_states, scxml, generated_doc::format::scxml)
    ->Name("parse/scxml_1000_states")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(parse_1000_states, xstate, generated_doc::format::xstate)
    ->Name("parse/xstate_1000_states")->Unit(benchmark::kMicrosecond);
