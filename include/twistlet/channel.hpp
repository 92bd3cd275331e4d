// twistlet core layer: channels, Stackless-style rendezvous between tasklets.
#pragma once

#include <twistlet/tasklet.hpp>

#include <cstdint>
#include <exception>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace twistlet {

/// A send or receive that would block on a closing channel.
struct channel_closed_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {

/// A waiting tasklet's entry in a channel's queue. It lives on the waiter's stack, as the base
/// of the slot through which the value passes, so taking the oldest waiter needs no call.
struct channel_waiter {
  channel_waiter* next = nullptr;
  channel_waiter* prev = nullptr;
  tasklet_impl* who = nullptr;
};

/// The non-template part of a channel: the queue of waiting tasklets and the rules of
/// SEMANTICS.md §2 (balance, preference, closing, deadlock).
class channel_state final : public wait_target {
 public:
  channel_state() noexcept;
  explicit channel_state(std::string name) noexcept;
  channel_state(const channel_state&) = delete;
  channel_state& operator=(const channel_state&) = delete;
  ~channel_state();

  /// Pops the oldest waiter that is a partner for an operation in direction `dir` (+1 send,
  /// -1 receive), or returns nullptr if none waits.
  channel_waiter* pop_partner(int dir) noexcept {
    if (dir > 0 ? balance_ >= 0 : balance_ <= 0) return nullptr;
    channel_waiter* w = head_;
    head_ = w->next;
    if (head_)
      head_->prev = nullptr;
    else
      tail_ = nullptr;
    balance_ += dir;
    return w;
  }
  /// Lets the partner popped by pop_partner() run, following the preference: it is switched
  /// to now if the channel prefers it, otherwise it is appended to the run queue.
  void hand_over(tasklet_impl* partner, int dir);
  /// Blocks the caller in direction `dir`, queued as `self` (the base of its transfer slot).
  /// Throws channel_closed_error if the channel is closing, deadlock_error if nothing else can
  /// run, and whatever is thrown into the waiting tasklet (it is then no longer queued).
  void wait(int dir, channel_waiter& self);

  int balance() const noexcept { return balance_; }
  int preference() const noexcept { return preference_; }
  void set_preference(int p) noexcept { preference_ = p > 0 ? 1 : (p < 0 ? -1 : 0); }
  void close() noexcept { closing_ = true; }
  void open() noexcept { closing_ = false; }
  bool closing() const noexcept { return closing_; }
  void check_owner() const { TWISTLET_CHECK_OWNER(owner_, "channel"); }

  const std::string& name() const noexcept { return name_; }

  void abandon(tasklet_impl* t) noexcept override;
  std::string describe() const override;
  std::string describe_waiter(const tasklet_impl* t) const override;
  std::string deadlock_message(const tasklet_impl* t) const override;

  std::uint32_t refs = 1;

 private:
  channel_waiter* head_ = nullptr;
  channel_waiter* tail_ = nullptr;
  const void* owner_;
  int balance_ = 0;
  int preference_ = -1;
  bool closing_ = false;
  std::string name_;
};

}  // namespace detail

/// A rendezvous channel between tasklets of one thread: no buffer, a send completes when a
/// receiver takes the value. A copyable handle; copies refer to the same channel.
///
/// Waiters queue FIFO. balance() > 0 counts blocked senders, < 0 blocked receivers. Which side
/// runs on after a hand-over follows preference(): -1 (default) prefers the receiver, so a
/// send() to a waiting receiver switches to it at once and the sender goes to the back of the
/// run queue, while a receive() from a waiting sender returns at once; +1 is the mirror image;
/// 0 lets the acting side always continue.
template <class T>
class channel {
  struct send_slot : detail::channel_waiter {
    send_slot(T* v, std::exception_ptr e) noexcept : value(v), error(std::move(e)) {}
    T* value;
    std::exception_ptr error;
  };
  struct receive_slot : detail::channel_waiter {
    std::optional<T> value;
    std::exception_ptr error;
  };

 public:
  /// A new, open channel without a name.
  channel() : state_(new detail::channel_state) {}
  /// A channel with a name, which introspection (debug.hpp) and deadlock messages show.
  explicit channel(std::string name) : state_(new detail::channel_state(std::move(name))) {}
  /// Another handle to the same channel.
  channel(const channel& other) noexcept : state_(other.state_) { ++state_->refs; }
  /// Makes this handle refer to `other`'s channel.
  channel& operator=(const channel& other) noexcept {
    channel(other).swap(*this);
    return *this;
  }
  /// Drops this handle; the channel goes with its last handle (a waiter holds one too).
  ~channel() { release(state_); }
  /// Exchanges the channels the two handles refer to.
  void swap(channel& other) noexcept { std::swap(state_, other.state_); }

  /// Sends `value`, blocking until a receiver takes it.
  /// Errors: channel_closed_error if it would block on a closing channel; deadlock_error if
  /// no other tasklet could ever receive; whatever is thrown into the blocked sender (e.g.
  /// tasklet_exit when killed; the value is then discarded).
  void send(T value) {
    send_impl<true>(&value, nullptr);
  }

  /// Receives a value, blocking until a sender offers one. Throws what a sender passed to
  /// send_exception(), and the errors listed for send().
  T receive() {
    detail::channel_state& s = *state_;
    s.check_owner();
    if (detail::channel_waiter* sender = s.pop_partner(-1)) {
      auto* slot = static_cast<send_slot*>(sender);
      if (slot->error) {
        std::exception_ptr e = std::move(slot->error);
        s.hand_over(sender->who, -1);
        std::rethrow_exception(e);
      }
      T value = std::move(*slot->value);
      s.hand_over(sender->who, -1);
      return value;
    }
    receive_slot slot;
    hold h(state_);
    s.wait(-1, slot);
    if (slot.error) std::rethrow_exception(slot.error);
    return std::move(*slot.value);
  }

  /// Like send(), but the receiver's receive() throws `e` instead of returning a value.
  /// Throws std::invalid_argument for a null `e`.
  void send_exception(std::exception_ptr e) {
    if (!e) throw std::invalid_argument("channel::send_exception: null exception");
    send_impl<false>(nullptr, std::move(e));
  }

  /// Sends every element of [first, last) in order, each send blocking as send() does.
  /// Returns the number sent.
  template <class It>
  std::size_t send_sequence(It first, It last) {
    std::size_t n = 0;
    for (; first != last; ++first, ++n) send(T(*first));
    return n;
  }

  /// > 0: that many senders wait; < 0: that many receivers wait.
  int balance() const noexcept { return state_->balance(); }
  /// -1 prefer the receiver (default), 0 none, +1 prefer the sender.
  int preference() const noexcept { return state_->preference(); }
  /// Sets the preference, clamping to -1..1.
  void set_preference(int p) { state_->set_preference(p); }
  /// Marks the channel closing: operations that would block now throw channel_closed_error;
  /// waiting partners can still be drained. Wakes nobody.
  void close() noexcept { state_->close(); }
  /// Clears closing.
  void open() noexcept { state_->open(); }
  /// Closes the channel and ends the wait of every blocked receiver with
  /// channel_closed_error, which ends a range-for loop over the channel. Blocked senders stay
  /// and can still be drained. Returns the number of receivers woken. (close() alone wakes
  /// nobody, as in Stackless, so a receiver already waiting would wait for ever.)
  std::size_t stop() {
    close();
    std::size_t woken = 0;
    for (; balance() < 0; ++woken)
      send_exception(std::make_exception_ptr(channel_closed_error("channel::stop: the channel was stopped")));
    return woken;
  }
  /// close() was called (and open() not since).
  bool closing() const noexcept { return state_->closing(); }
  /// Closing and nobody waits.
  bool closed() const noexcept { return state_->closing() && state_->balance() == 0; }
  /// The name given to the constructor (empty if none).
  const std::string& name() const noexcept { return state_->name(); }

  /// Receives until the channel is closing with no sender waiting, or a receive ends with
  /// channel_closed_error (see stop()): `for (T v : ch) ...`.
  class iterator {
   public:
    /// Single pass: each value is received once.
    using iterator_category = std::input_iterator_tag;
    /// The channel's element type.
    using value_type = T;
    /// As the standard iterator requirements ask.
    using difference_type = std::ptrdiff_t;
    /// Points at the value last received.
    using pointer = T*;
    /// The value last received.
    using reference = T&;

    /// The end iterator.
    iterator() = default;
    /// Receives the first value from `*ch` (or becomes the end iterator).
    explicit iterator(channel* ch) : ch_(ch) { advance(); }
    /// The value last received.
    T& operator*() { return *value_; }
    /// The value last received.
    T* operator->() { return &*value_; }
    /// Receives the next value (or becomes the end iterator).
    iterator& operator++() {
      advance();
      return *this;
    }
    /// Receives the next value; returns nothing, as the old value is gone.
    void operator++(int) { advance(); }
    /// Equal when both are the end, or both read the same channel.
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.ch_ == b.ch_; }

   private:
    void advance() {
      if (ch_->closing() && ch_->balance() <= 0) {
        ch_ = nullptr;
        value_.reset();
        return;
      }
      try {
        value_.emplace(ch_->receive());
      } catch (const channel_closed_error&) {
        ch_ = nullptr;
        value_.reset();
      }
    }
    channel* ch_ = nullptr;
    std::optional<T> value_;
  };
  /// Receives the first value (blocking); see iterator.
  iterator begin() { return iterator(this); }
  /// The end of the values.
  iterator end() noexcept { return iterator(); }

  /// Two handles to the same channel compare equal.
  friend bool operator==(const channel& a, const channel& b) noexcept { return a.state_ == b.state_; }

 private:
  // Keeps the channel alive while its tasklet waits, even if every handle goes meanwhile.
  struct hold {
    explicit hold(detail::channel_state* s) noexcept : s_(s) { ++s_->refs; }
    ~hold() { release(s_); }
    detail::channel_state* s_;
  };
  static void release(detail::channel_state* s) noexcept {
    if (--s->refs == 0) delete s;
  }

  // The exception path never instantiates the value path (g++ 12 warns about the null value
  // pointer there otherwise).
  template <bool WithValue>
  void send_impl(T* value, std::exception_ptr error) {
    detail::channel_state& s = *state_;
    s.check_owner();
    if (detail::channel_waiter* receiver = s.pop_partner(+1)) {
      auto* slot = static_cast<receive_slot*>(receiver);
      if constexpr (WithValue)
        slot->value.emplace(std::move(*value));
      else
        slot->error = std::move(error);
      s.hand_over(receiver->who, +1);
      return;
    }
    send_slot slot(value, std::move(error));
    hold h(state_);
    s.wait(+1, slot);
  }

  detail::channel_state* state_;
};

}  // namespace twistlet
