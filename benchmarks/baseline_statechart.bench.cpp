/// \file Baselines: the toggle and parallel machines written with Boost.Statechart
/// (`sc::state_machine` + `sc::simple_state`, entry actions in constructors).
#include "bench_checks.hpp"

#include <benchmark/benchmark.h>
#include <boost/intrusive_ptr.hpp>
#include <boost/mpl/list.hpp>
#include <boost/statechart/custom_reaction.hpp>
#include <boost/statechart/event.hpp>
#include <boost/statechart/simple_state.hpp>
#include <boost/statechart/state_machine.hpp>
#include <boost/statechart/transition.hpp>

#include <cstdint>

namespace {

namespace mpl = boost::mpl;
namespace sc = boost::statechart;

// ---- (a) toggle: off <-> on on `toggle` ----

struct toggle_ev : sc::event<toggle_ev> {};
struct off;
struct on;
struct toggle_machine : sc::state_machine<toggle_machine, off> {};
struct off : sc::simple_state<off, toggle_machine> {
  using reactions = sc::transition<toggle_ev, on>;
};
struct on : sc::simple_state<on, toggle_machine> {
  using reactions = sc::transition<toggle_ev, off>;
};

void statechart_toggle(benchmark::State& state) {
  toggle_machine m;
  m.initiate();
  const toggle_ev ev;
  for (auto _ : state) {
    m.process_event(ev);
    benchmark::ClobberMemory();
  }
  const auto events = static_cast<std::int64_t>(state.iterations());
  xsn_bench::check_toggle(state, m.state_cast<const on*>() != nullptr, events);
  state.SetItemsProcessed(events);
}

// ---- (b) parallel: two regions, rings a1->a2->a3 and b1->b2->b3 on `next` ----
//
// Boost.Statechart hands an event to the active leaf states one after the other and stops at the
// first reaction that consumes it, so a plain `sc::transition` in each region would advance region
// `a` only. The idiomatic way to have one `next` advance both regions is for region `a` to post a
// region-`b` event while it transits; `process_event` runs the posted event before it returns.
// The posted event is allocated once, so no allocation is charged to Statechart for it.

// `simple_state` constructors cannot reach the machine, so the entry actions count into a
// variable of this translation unit (benchmarks run one at a time).
std::int64_t parallel_counter = 0;

void count_entry() {
  ++parallel_counter;
  benchmark::DoNotOptimize(parallel_counter);
}

struct next_ev : sc::event<next_ev> {};
struct next_b_ev : sc::event<next_b_ev> {};  ///< `next`, as region `b` receives it.
const boost::intrusive_ptr<const sc::event_base> next_b{new next_b_ev};

struct parallel;
struct a1; struct a2; struct a3;
struct b1; struct b2; struct b3;
struct parallel_machine : sc::state_machine<parallel_machine, parallel> {};
struct parallel : sc::simple_state<parallel, parallel_machine, mpl::list<a1, b1>> {};

/// A region-`a` state: on `next`, passes it on to region `b` and moves to `Next`.
template <class Self, class Next>
struct a_state : sc::simple_state<Self, parallel::orthogonal<0>> {
  using reactions = sc::custom_reaction<next_ev>;
  a_state() { count_entry(); }
  sc::result react(const next_ev&) {
    this->post_event(next_b);
    return this->template transit<Next>();
  }
};
struct a1 : a_state<a1, a2> {};
struct a2 : a_state<a2, a3> {};
struct a3 : a_state<a3, a1> {};

/// A region-`b` state: on `next` moves to `Next`.
template <class Self, class Next>
struct b_state : sc::simple_state<Self, parallel::orthogonal<1>> {
  using reactions = sc::transition<next_b_ev, Next>;
  b_state() { count_entry(); }
};
struct b1 : b_state<b1, b2> {};
struct b2 : b_state<b2, b3> {};
struct b3 : b_state<b3, b1> {};

void statechart_parallel(benchmark::State& state) {
  parallel_counter = 0;
  parallel_machine m;
  m.initiate();
  const next_ev ev;
  for (auto _ : state) {
    m.process_event(ev);
    benchmark::ClobberMemory();
  }
  const auto events = static_cast<std::int64_t>(state.iterations());
  xsn_bench::check_parallel(state, parallel_counter, events);
  state.SetItemsProcessed(events);
}

}  // namespace

BENCHMARK(statechart_toggle)->Name("baseline/statechart/toggle");
BENCHMARK(statechart_parallel)->Name("baseline/statechart/parallel");
