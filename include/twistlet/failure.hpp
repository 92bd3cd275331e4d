// twistlet defer layer: failures and outcomes.
//
// A failure is the error half of a deferred's result: it keeps the original exception (type and
// payload) as a std::exception_ptr, so whoever finally handles it can rethrow exactly what was
// thrown. An outcome<T> is "a T or a failure", the argument of add_both() callbacks.
#pragma once

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include <twistlet/tasklet.hpp>

namespace twistlet {

/// An error result: wraps the original exception of whatever failed.
class failure {
 public:
  /// Wraps `e`.
  /// Throws std::invalid_argument if `e` is null.
  explicit failure(std::exception_ptr e) : e_(std::move(e)) {
    if (!e_) throw std::invalid_argument("twistlet::failure needs an exception");
  }

  /// A failure holding a copy of `e` (any type, not only std::exception).
  template <class E>
  static failure make(E&& e) {
    return failure(std::make_exception_ptr(std::forward<E>(e)));
  }

  /// A failure holding the exception currently being handled; call it inside a catch block.
  /// Throws std::invalid_argument outside a catch block.
  static failure current() { return failure(std::current_exception()); }

  /// The original exception.
  std::exception_ptr exception() const noexcept { return e_; }

  /// Whether the exception is an E (or derives from it).
  template <class E>
  bool check() const noexcept {
    return get<E>() != nullptr;
  }

  /// The exception as an E, or nullptr if it is not one. The object lives as long as any
  /// failure (or exception_ptr) that refers to it.
  template <class E>
  const E* get() const noexcept {
    try {
      std::rethrow_exception(e_);
    } catch (const E& e) {
      return &e;
    } catch (...) {
      return nullptr;
    }
  }

  /// Returns if the exception is one of `E...`; otherwise rethrows the original exception, so
  /// that an errback can pass on failures it does not handle.
  template <class... E>
  void trap() const {
    if (!(check<E>() || ...)) raise();
  }

  /// Rethrows the original exception.
  [[noreturn]] void raise() const { std::rethrow_exception(e_); }

  /// std::exception::what() of the exception, or a description of its type (for example
  /// "exception of type my::error", or "tasklet_exit: the tasklet was killed").
  std::string what() const;

  /// Whether both refer to the same exception object.
  friend bool operator==(const failure& a, const failure& b) noexcept { return a.e_ == b.e_; }

 private:
  std::exception_ptr e_;
};

template <class T>
class outcome;

namespace detail {
template <class T>
struct is_outcome : std::false_type {};
template <class T>
struct is_outcome<outcome<T>> : std::true_type {};
/// The readable (demangled) name of a type, for error messages.
std::string type_name(const std::type_info& t);
}  // namespace detail

/// A T or a failure: what an add_both() callback receives.
template <class T>
class outcome {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, failure>, "outcome<failure> is ambiguous");
  static_assert(!std::is_reference_v<T>, "outcome holds values, not references");

 public:
  /// A successful outcome.
  outcome(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  /// A failed outcome.
  outcome(failure f) : v_(std::in_place_index<1>, std::move(f)) {}
  /// A successful outcome built in place from `args`.
  template <class... A>
  explicit outcome(std::in_place_t, A&&... args) : v_(std::in_place_index<0>, std::forward<A>(args)...) {}

  /// Whether it holds a value.
  bool has_value() const noexcept { return v_.index() == 0; }
  /// has_value().
  explicit operator bool() const noexcept { return has_value(); }

  /// The value.
  /// Throws the failure's original exception if it holds a failure.
  T& value() & {
    if (!has_value()) std::get<1>(v_).raise();
    return std::get<0>(v_);
  }
  /// The value. Throws the failure's original exception if it holds a failure.
  const T& value() const& {
    if (!has_value()) std::get<1>(v_).raise();
    return std::get<0>(v_);
  }
  /// The value, moved out. Throws the failure's original exception if it holds a failure.
  T&& value() && { return std::move(value()); }

  /// The failure.
  /// Throws std::logic_error if it holds a value.
  const failure& error() const {
    if (has_value()) throw std::logic_error("outcome::error(): the outcome holds a value");
    return std::get<1>(v_);
  }

 private:
  std::variant<T, failure> v_;
};

/// Success (no value) or a failure.
template <>
class outcome<void> {
 public:
  /// A successful outcome.
  outcome() noexcept = default;
  /// A failed outcome.
  outcome(failure f) : f_(std::move(f)) {}

  /// Whether it is a success.
  bool has_value() const noexcept { return !f_.has_value(); }
  /// has_value().
  explicit operator bool() const noexcept { return has_value(); }

  /// Returns on success.
  /// Throws the failure's original exception if it holds a failure.
  void value() const {
    if (f_) f_->raise();
  }

  /// The failure.
  /// Throws std::logic_error if it is a success.
  const failure& error() const {
    if (!f_) throw std::logic_error("outcome::error(): the outcome holds a value");
    return *f_;
  }

 private:
  std::optional<failure> f_;
};

}  // namespace twistlet
