/// \file Baselines: the toggle and parallel machines written with Boost.MSM (back-end
/// `msm::back::state_machine`, functor front-end), in its default configuration.
#include "bench_checks.hpp"

#include <benchmark/benchmark.h>
#include <boost/mpl/vector.hpp>
#include <boost/msm/back/state_machine.hpp>
#include <boost/msm/front/functor_row.hpp>
#include <boost/msm/front/state_machine_def.hpp>

#include <cstdint>

namespace {

namespace mpl = boost::mpl;
namespace msm = boost::msm;
namespace msmf = boost::msm::front;

// ---- (a) toggle: off <-> on on `toggle` ----

struct toggle_ev {};

struct toggle_def : msmf::state_machine_def<toggle_def> {
  struct off : msmf::state<> {};
  struct on : msmf::state<> {};
  using initial_state = off;
  struct transition_table : mpl::vector<
      msmf::Row<off, toggle_ev, on, msmf::none, msmf::none>,
      msmf::Row<on, toggle_ev, off, msmf::none, msmf::none>> {};
};
using toggle_machine = msm::back::state_machine<toggle_def>;

void msm_toggle(benchmark::State& state) {
  toggle_machine m;
  m.start();
  const toggle_ev ev;
  for (auto _ : state) {
    m.process_event(ev);
    benchmark::ClobberMemory();
  }
  const auto events = static_cast<std::int64_t>(state.iterations());
  // State ids follow the order of first appearance in the transition table: off = 0, on = 1.
  xsn_bench::check_toggle(state, m.current_state()[0] == 1, events);
  state.SetItemsProcessed(events);
}

// ---- (b) parallel: two regions, rings a1->a2->a3 and b1->b2->b3 on `next` ----

struct next_ev {};

struct parallel_def : msmf::state_machine_def<parallel_def> {
  std::int64_t counter = 0;

  /// A state whose entry action counts, as `<onentry><xsn:action name="count"/>` does.
  template <int N>
  struct counting : msmf::state<> {
    template <class Event, class Fsm>
    void on_entry(const Event&, Fsm& fsm) {
      ++fsm.counter;
      benchmark::DoNotOptimize(fsm.counter);
    }
  };
  using a1 = counting<1>;
  using a2 = counting<2>;
  using a3 = counting<3>;
  using b1 = counting<4>;
  using b2 = counting<5>;
  using b3 = counting<6>;

  using initial_state = mpl::vector<a1, b1>;  // two orthogonal regions
  struct transition_table : mpl::vector<
      msmf::Row<a1, next_ev, a2, msmf::none, msmf::none>,
      msmf::Row<a2, next_ev, a3, msmf::none, msmf::none>,
      msmf::Row<a3, next_ev, a1, msmf::none, msmf::none>,
      msmf::Row<b1, next_ev, b2, msmf::none, msmf::none>,
      msmf::Row<b2, next_ev, b3, msmf::none, msmf::none>,
      msmf::Row<b3, next_ev, b1, msmf::none, msmf::none>> {};
};
using parallel_machine = msm::back::state_machine<parallel_def>;

void msm_parallel(benchmark::State& state) {
  parallel_machine m;
  m.start();
  const next_ev ev;
  for (auto _ : state) {
    m.process_event(ev);
    benchmark::ClobberMemory();
  }
  const auto events = static_cast<std::int64_t>(state.iterations());
  xsn_bench::check_parallel(state, m.counter, events);
  state.SetItemsProcessed(events);
}

}  // namespace

BENCHMARK(msm_toggle)->Name("baseline/msm/toggle");
BENCHMARK(msm_parallel)->Name("baseline/msm/parallel");
