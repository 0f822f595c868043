#pragma once
/// \file A FIFO queue whose storage is allocated on demand.
#include <cstddef>
#include <memory>
#include <utility>

namespace xsn::inline v0::detail {

/// FIFO of movable values. Allocates nothing until the first push and frees its storage on
/// `clear` (an idle session costs no queue memory); grows by doubling. The caller enforces the
/// capacity.
template <class T>
class ring_queue {
 public:
  ring_queue() = default;
  ring_queue(ring_queue&& o) noexcept
      : storage_(std::move(o.storage_)), cap_(std::exchange(o.cap_, 0)), head_(std::exchange(o.head_, 0)),
        size_(std::exchange(o.size_, 0)) {}
  ring_queue& operator=(ring_queue&& o) noexcept {
    if (this != &o) {
      clear();
      storage_ = std::move(o.storage_);
      cap_ = std::exchange(o.cap_, 0);
      head_ = std::exchange(o.head_, 0);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~ring_queue() { clear(); }

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  void push_back(T v) {
    if (size_ == cap_) grow();
    new (slot(head_ + size_)) T(std::move(v));
    ++size_;
  }
  T& front() noexcept { return *slot(head_); }
  void pop_front() noexcept {
    slot(head_)->~T();
    head_ = (head_ + 1) & (cap_ - 1);
    if (--size_ == 0) head_ = 0;
  }
  void clear() noexcept {
    while (size_) pop_front();
    storage_.reset();
    cap_ = 0;
  }
  /// Calls `f` on each element, front to back.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < size_; ++i) f(*slot(head_ + i));
  }
  /// Removes the elements for which `pred` is true, keeping the order of the others.
  template <class P>
  void remove_if(P&& pred) {
    ring_queue kept;
    while (size_) {
      if (!pred(front())) kept.push_back(std::move(front()));
      pop_front();
    }
    *this = std::move(kept);
  }

 private:
  struct alignas(T) cell {
    unsigned char bytes[sizeof(T)];
  };
  T* slot(std::size_t i) const noexcept {
    return std::launder(reinterpret_cast<T*>(storage_[i & (cap_ - 1)].bytes));
  }
  void grow() {
    std::size_t cap = cap_ ? cap_ * 2 : 4;
    std::unique_ptr<cell[]> next(new cell[cap]);
    for (std::size_t i = 0; i < size_; ++i) {
      new (next[i].bytes) T(std::move(*slot(head_ + i)));
      slot(head_ + i)->~T();
    }
    storage_ = std::move(next);
    cap_ = cap;
    head_ = 0;
  }
  std::unique_ptr<cell[]> storage_;
  std::size_t cap_ = 0, head_ = 0, size_ = 0;
};

}  // namespace xsn::inline v0::detail
