#pragma once
/// \file Values exchanged between sessions, datamodels and the outside world.
#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace xsn::inline v0 {

/// Event payloads, parameters and datamodel values cross the datamodel boundary as JSON values.
using value = boost::json::value;

/// An error produced while evaluating an expression or running executable content.
struct eval_error {
  std::string message;  ///< What went wrong, for `error.execution` and logs.
};

/// The outcome of an evaluation: a `T` or an `eval_error`.
template <class T>
class result {
 public:
  /// A successful result.
  result(T v) : v_(std::in_place_index<0>, std::move(v)) {}  // NOLINT(google-explicit-constructor)
  /// A failed result.
  result(eval_error e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT
  /// True when a value is held.
  explicit operator bool() const noexcept { return v_.index() == 0; }
  /// The value; only valid when `*this` is true.
  T& operator*() & { return std::get<0>(v_); }
  /// The value; only valid when `*this` is true.
  const T& operator*() const& { return std::get<0>(v_); }
  /// The value, moved out; only valid when `*this` is true.
  T&& operator*() && { return std::get<0>(std::move(v_)); }
  /// Member access to the value.
  T* operator->() { return &std::get<0>(v_); }
  /// The error; only valid when `*this` is false.
  const eval_error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, eval_error> v_;
};

/// `result<void>`: success or an `eval_error`.
template <>
class result<void> {
 public:
  /// Success.
  result() = default;
  /// Failure.
  result(eval_error e) : err_(std::move(e)) {}  // NOLINT
  /// True on success.
  explicit operator bool() const noexcept { return !err_; }
  /// The error; meaningful only when `*this` is false (an empty one on success).
  const eval_error& error() const {
    static const eval_error none;
    return err_ ? *err_ : none;
  }

 private:
  std::optional<eval_error> err_;  // (a success builds and destroys no string)
};

}  // namespace xsn::inline v0
