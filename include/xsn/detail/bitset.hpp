#pragma once
/// \file A dynamic bitset over state indices, sized once per chart (no allocation after that).
#include <bit>
#include <cstdint>
#include <vector>

namespace xsn::inline v0::detail {

/// Fixed-size set of small integers, iterated in ascending or descending order.
class bitset {
 public:
  bitset() = default;
  /// A set that can hold `0 .. n-1`.
  explicit bitset(std::size_t n) : words_((n + 63) / 64, 0) {}
  /// Sizes a default-constructed set for `0 .. n-1` (scratch sets are allocated on first use).
  void ensure(std::size_t n) {
    if (words_.empty()) words_.assign((n + 63) / 64, 0);
  }
  void set(std::uint32_t i) noexcept { words_[i >> 6] |= bit(i); }
  void reset(std::uint32_t i) noexcept { words_[i >> 6] &= ~bit(i); }
  bool test(std::uint32_t i) const noexcept { return (words_[i >> 6] & bit(i)) != 0; }
  void clear() noexcept {
    for (auto& w : words_) w = 0;
  }
  bool empty() const noexcept {
    for (auto w : words_)
      if (w) return false;
    return true;
  }
  /// True when any member lies in `[lo, hi)`.
  bool any_in(std::uint32_t lo, std::uint32_t hi) const noexcept {
    while (lo < hi) {
      auto wi = lo >> 6;
      auto w = words_[wi] & (~std::uint64_t{0} << (lo & 63));
      auto word_end = (wi + 1) << 6;
      if (hi < word_end) w &= (std::uint64_t{1} << (hi & 63)) - 1;
      if (w) return true;
      lo = word_end;
    }
    return false;
  }
  /// Adds the members of `other & mask restricted to [lo, hi)`.
  void add_range_of(const bitset& other, std::uint32_t lo, std::uint32_t hi) noexcept {
    while (lo < hi) {
      auto wi = lo >> 6;
      auto w = other.words_[wi] & (~std::uint64_t{0} << (lo & 63));
      auto word_end = (wi + 1) << 6;
      if (hi < word_end) w &= (std::uint64_t{1} << (hi & 63)) - 1;
      words_[wi] |= w;
      lo = word_end;
    }
  }
  /// Calls `f(i)` for each member in ascending order.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t wi = 0; wi < words_.size(); ++wi)
      for (auto w = words_[wi]; w; w &= w - 1) f(static_cast<std::uint32_t>(wi * 64 + std::countr_zero(w)));
  }
  /// Calls `f(i)` for each member of `*this & mask` in ascending order.
  template <class F>
  void for_each_and(const bitset& mask, F&& f) const {
    for (std::size_t wi = 0; wi < words_.size(); ++wi)
      for (auto w = words_[wi] & mask.words_[wi]; w; w &= w - 1)
        f(static_cast<std::uint32_t>(wi * 64 + std::countr_zero(w)));
  }
  /// Calls `f(i)` for each member in `[lo, hi)` in descending order.
  template <class F>
  void for_each_reverse_in(std::uint32_t lo, std::uint32_t hi, F&& f) const {
    if (lo >= hi) return;
    for (auto wi = (hi - 1) >> 6;; --wi) {
      auto w = words_[wi];
      if (wi == (hi - 1) >> 6 && (hi & 63)) w &= (std::uint64_t{1} << (hi & 63)) - 1;
      if (wi == lo >> 6) w &= ~std::uint64_t{0} << (lo & 63);
      while (w) {
        auto b = 63 - std::countl_zero(w);
        w &= ~(std::uint64_t{1} << b);
        f(static_cast<std::uint32_t>(wi * 64 + b));
      }
      if (wi == lo >> 6) break;
    }
  }
  /// Calls `f(i)` for each member in `[lo, hi)` in ascending order.
  template <class F>
  void for_each_in(std::uint32_t lo, std::uint32_t hi, F&& f) const {
    for (auto wi = lo >> 6; lo < hi && wi <= (hi - 1) >> 6; ++wi) {
      auto w = words_[wi];
      if (wi == lo >> 6) w &= ~std::uint64_t{0} << (lo & 63);
      if (wi == (hi - 1) >> 6 && (hi & 63)) w &= (std::uint64_t{1} << (hi & 63)) - 1;
      for (; w; w &= w - 1) f(static_cast<std::uint32_t>(wi * 64 + std::countr_zero(w)));
    }
  }
  /// Calls `f(i)` for each member in descending order.
  template <class F>
  void for_each_reverse(F&& f) const {
    for (std::size_t wi = words_.size(); wi-- > 0;)
      for (auto w = words_[wi]; w;) {
        auto b = 63 - std::countl_zero(w);
        w &= ~(std::uint64_t{1} << b);
        f(static_cast<std::uint32_t>(wi * 64 + b));
      }
  }

 private:
  static std::uint64_t bit(std::uint32_t i) noexcept { return std::uint64_t{1} << (i & 63); }
  std::vector<std::uint64_t> words_;
};

}  // namespace xsn::inline v0::detail
