#pragma once
// Private to xsn_core: a set of state indices as a two-level bitset. Besides a bit per state it
// keeps a summary bit per 64-state word ("this word is not empty"), so walks, clears and range
// queries over long ranges skip empty words 64 at a time and cost about the number of members plus
// states / 4096, where a flat bitset costs states / 64: an event's cost must not grow with states it
// does not touch (10,000 idle siblings of the toggle's states made a flat configuration's walks 10x
// slower than the event itself). Setting and resetting stay O(1), which a sorted list of members
// is not (it cost the parallel benchmark 25 % in memmoves). Short ranges are walked word by word.
#include <xsn/detail/bitset.hpp>

#include <bit>
#include <cstdint>
#include <vector>

namespace xsn::inline v0::detail {

class state_set {
 public:
  state_set() = default;
  /// A set that can hold `0 .. n-1`.
  explicit state_set(std::size_t n) { ensure(n); }
  /// Sizes a default-constructed set for `0 .. n-1`.
  void ensure(std::size_t n) {
    if (!words_.empty()) return;
    words_.assign((n + 63) / 64, 0);
    summary_.assign((words_.size() + 63) / 64, 0);
  }

  bool test(std::uint32_t i) const noexcept { return (words_[i >> 6] & bit(i)) != 0; }
  void set(std::uint32_t i) noexcept {
    words_[i >> 6] |= bit(i);
    summary_[i >> 12] |= bit(i >> 6);
  }
  void reset(std::uint32_t i) noexcept {
    if (!(words_[i >> 6] &= ~bit(i))) summary_[i >> 12] &= ~bit(i >> 6);
  }
  /// Empties the set, touching only its non-empty words.
  void clear() noexcept {
    for (std::size_t si = 0; si < summary_.size(); ++si) {
      for (auto s = summary_[si]; s; s &= s - 1) words_[si * 64 + std::countr_zero(s)] = 0;
      summary_[si] = 0;
    }
  }
  /// Replaces the contents with the members of `b` (sized for the same chart).
  void assign(const bitset& b) {
    clear();
    b.for_each([&](std::uint32_t i) { set(i); });
  }

  /// True when any member lies in `[lo, hi)`.
  bool any_in(std::uint32_t lo, std::uint32_t hi) const noexcept {
    bool found = false;
    for_each_word(lo, hi, [&](std::uint32_t) { return found = true; });
    return found;
  }
  /// Calls `f(i)` for each member in ascending order.
  template <class F>
  void for_each(F&& f) const {
    for_each_in(0, static_cast<std::uint32_t>(words_.size() * 64), f);
  }
  /// Calls `f(i)` for each member of `*this & mask` in ascending order (`mask` sized alike).
  template <class F>
  void for_each_and(const bitset& mask, F&& f) const {
    if (words_.size() <= flat_words) [[likely]] {  // a small chart: the words are their own summary
      for (std::uint32_t wi = 0; wi < words_.size(); ++wi)
        for (auto w = words_[wi]; w; w &= w - 1) {
          const auto i = wi * 64 + static_cast<std::uint32_t>(std::countr_zero(w));
          if (mask.test(i)) f(i);
        }
      return;
    }
    for (std::size_t si = 0; si < summary_.size(); ++si)
      for (auto s = summary_[si]; s; s &= s - 1) {
        const auto wi = static_cast<std::uint32_t>(si * 64 + std::countr_zero(s));
        for (auto w = words_[wi]; w; w &= w - 1) {
          const auto i = wi * 64 + static_cast<std::uint32_t>(std::countr_zero(w));
          if (mask.test(i)) f(i);
        }
      }
  }
  /// Calls `f(i)` for each member in `[lo, hi)` in ascending order.
  template <class F>
  void for_each_in(std::uint32_t lo, std::uint32_t hi, F&& f) const {
    for_each_word(lo, hi, [&](std::uint32_t wi) {
      for (auto w = masked(wi, lo, hi); w; w &= w - 1) f(wi * 64 + static_cast<std::uint32_t>(std::countr_zero(w)));
      return false;
    });
  }
  /// Calls `f(i)` for each member in `[lo, hi)` in descending order; `f` may remove the member it
  /// is given.
  template <class F>
  void for_each_reverse_in(std::uint32_t lo, std::uint32_t hi, F&& f) const {
    if (lo >= hi || words_.empty()) return;
    const auto wlo = lo >> 6, whi = (hi - 1) >> 6;
    if (whi - wlo < flat_words) [[likely]] {  // a short range: its words directly
      for (auto wi = whi;; --wi) {
        reverse_in_word(wi, lo, hi, f);
        if (wi == wlo) return;
      }
    }
    for (auto si = whi >> 6;; --si) {
      auto s = summary_[si];
      if (si == whi >> 6 && (whi & 63) != 63) s &= (std::uint64_t{2} << (whi & 63)) - 1;
      if (si == wlo >> 6) s &= ~std::uint64_t{0} << (wlo & 63);
      while (s) {
        const auto b = 63 - std::countl_zero(s);
        s &= ~(std::uint64_t{1} << b);
        reverse_in_word(static_cast<std::uint32_t>(si * 64 + b), lo, hi, f);
      }
      if (si == wlo >> 6) break;
    }
  }
  /// Calls `f(i)` for each member in descending order; `f` may remove the member it is given.
  template <class F>
  void for_each_reverse(F&& f) const {
    for_each_reverse_in(0, static_cast<std::uint32_t>(words_.size() * 64), f);
  }

 private:
  /// Spans of this many words or fewer are walked word by word: the summary pays from about there.
  static constexpr std::uint32_t flat_words = 4;
  static std::uint64_t bit(std::uint32_t i) noexcept { return std::uint64_t{1} << (i & 63); }
  /// Word `wi` restricted to `[lo, hi)`.
  std::uint64_t masked(std::uint32_t wi, std::uint32_t lo, std::uint32_t hi) const noexcept {
    auto w = words_[wi];
    if (wi == lo >> 6) w &= ~std::uint64_t{0} << (lo & 63);
    if (wi == (hi - 1) >> 6 && (hi & 63)) w &= (std::uint64_t{1} << (hi & 63)) - 1;
    return w;
  }
  template <class F>
  void reverse_in_word(std::uint32_t wi, std::uint32_t lo, std::uint32_t hi, F& f) const {
    for (auto w = masked(wi, lo, hi); w;) {
      const auto k = 63 - std::countl_zero(w);
      w &= ~(std::uint64_t{1} << k);
      f(wi * 64 + static_cast<std::uint32_t>(k));
    }
  }
  /// Calls `g(wi)` for each word index `wi` that holds a member in `[lo, hi)`, ascending, until
  /// `g` returns true.
  template <class G>
  void for_each_word(std::uint32_t lo, std::uint32_t hi, G&& g) const {
    if (lo >= hi || words_.empty()) return;
    const auto wlo = lo >> 6, whi = (hi - 1) >> 6;
    if (whi - wlo < flat_words) [[likely]] {
      for (auto wi = wlo; wi <= whi; ++wi)
        if (masked(wi, lo, hi) && g(wi)) return;
      return;
    }
    for (auto si = wlo >> 6; si <= whi >> 6; ++si) {
      auto s = summary_[si];
      if (si == wlo >> 6) s &= ~std::uint64_t{0} << (wlo & 63);
      if (si == whi >> 6 && (whi & 63) != 63) s &= (std::uint64_t{2} << (whi & 63)) - 1;
      for (; s; s &= s - 1) {
        const auto wi = static_cast<std::uint32_t>(si * 64 + std::countr_zero(s));
        if (masked(wi, lo, hi) && g(wi)) return;
      }
    }
  }
  std::vector<std::uint64_t> words_;
  std::vector<std::uint64_t> summary_;  // bit k of summary_[j]: words_[j * 64 + k] is not empty
};

}  // namespace xsn::inline v0::detail
