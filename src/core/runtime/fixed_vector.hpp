#pragma once
/// \file A vector whose capacity is fixed at construction: push_back never allocates.
#include <cassert>
#include <cstddef>
#include <memory>
#include <utility>

namespace xsn::inline v0::detail {

/// Contiguous storage for at most `capacity` trivially copyable values (hot-path scratch lists).
template <class T>
class fixed_vector {
 public:
  fixed_vector() = default;
  /// Storage for `capacity` values.
  explicit fixed_vector(std::size_t capacity) : data_(new T[capacity ? capacity : 1]), cap_(capacity) {}
  void push_back(T v) noexcept {
    assert(size_ < cap_);
    data_[size_++] = v;
  }
  void clear() noexcept { size_ = 0; }
  /// Replaces the contents with `n` copies of `v`.
  void assign(std::size_t n, T v) noexcept {
    assert(n <= cap_);
    for (size_ = 0; size_ < n; ++size_) data_[size_] = v;
  }
  /// Removes the element at `i`, keeping order.
  void erase_at(std::size_t i) noexcept {
    for (auto k = i + 1; k < size_; ++k) data_[k - 1] = data_[k];
    --size_;
  }
  void swap(fixed_vector& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(cap_, o.cap_);
  }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T* begin() noexcept { return data_.get(); }
  T* end() noexcept { return data_.get() + size_; }
  const T* begin() const noexcept { return data_.get(); }
  const T* end() const noexcept { return data_.get() + size_; }

 private:
  std::unique_ptr<T[]> data_;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;
};

}  // namespace xsn::inline v0::detail
