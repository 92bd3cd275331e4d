// The timer queue behind manual_clock and the Asio reactor: a 4-ary heap keyed by
// (due time, where a moved call came from, scheduling order), with lazy deletion: cancelling
// or moving a call only marks its heap entry stale, and stale entries are dropped when they
// surface (or all at once when they outnumber the live ones).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include <twistlet/time.hpp>

namespace twistlet::detail {

class timer_queue;

/// The shared state of a delayed_call.
struct timer_node {
  enum class state : std::uint8_t { pending, called, cancelled };

  std::uint32_t refs = 1;       // delayed_call handles and heap entries
  state st = state::pending;
  time_point when;
  time_point moved_from;        // the due time before the last move (ordering key)
  std::uint64_t moved_epoch = 0;
  std::uint64_t seq = 0;        // scheduling order
  std::uint64_t stamp = 0;      // push order of its live heap entry; tells reactor passes what is new
  timer_queue* queue = nullptr; // null once the queue is gone
  std::function<void()> fn;
};

void retain(timer_node* n) noexcept;
void release(timer_node* n) noexcept;

/// Timers of one clock. Single-threaded, like its clock.
class timer_queue {
 public:
  /// `clock` provides now() for delayed_call::reset().
  explicit timer_queue(const reactor_time& clock);
  /// Pending calls become cancelled; their functions are destroyed.
  ~timer_queue();
  timer_queue(const timer_queue&) = delete;
  timer_queue& operator=(const timer_queue&) = delete;

  /// Schedules `fn` at `when`.
  delayed_call schedule(time_point when, std::function<void()> fn);

  /// The earliest due time of an active call.
  std::optional<time_point> earliest();

  /// manual_clock mode: runs calls while the earliest is due at the clock's now() (read
  /// again after every call, so re-entrant advances and calls scheduled meanwhile are
  /// honoured). An exception from a call propagates; the rest stay pending. Returns the
  /// number of calls run.
  std::size_t run_due();

  /// Reactor mode: runs the calls due at `now` that were scheduled (or last moved) before
  /// this pass began; calls created or moved during the pass wait for the next one, so a
  /// call_later(0) loop cannot starve I/O. An exception from a call goes to
  /// report_unhandled_error() and the pass goes on. Returns the number of calls run.
  std::size_t run_pass(time_point now);

  /// The active calls in the order they would run.
  std::vector<delayed_call> pending() const;
  /// The number of active calls.
  std::size_t size() const noexcept { return active_; }

  // For delayed_call.
  void cancel(timer_node& n) noexcept;
  void move(timer_node& n, time_point when);
  time_point now() const { return clock_.now(); }

 private:
  // 32 bytes, so that a node's four children share two cache lines: with a million timers
  // the heap walk is bound by cache misses.
  struct entry {
    time_point when;
    time_point moved_from;
    std::uint64_t seq;
    timer_node* node;
  };
  static bool before(const entry& a, const entry& b) noexcept {
    if (a.when != b.when) return a.when < b.when;
    if (a.moved_from != b.moved_from) return a.moved_from < b.moved_from;
    return a.seq < b.seq;
  }
  // An entry is stale once its call ran, was cancelled, or moved elsewhere. (An entry that a
  // call moved away from and back onto counts as live twice; whichever runs first marks the
  // call as run, which makes the other stale.)
  static bool live(const entry& e) noexcept {
    const timer_node& n = *e.node;
    return n.st == timer_node::state::pending && n.when == e.when && n.moved_from == e.moved_from;
  }

  void push(entry e);
  entry pop() noexcept;
  void sift_up(std::size_t i) noexcept;
  void sift_down(std::size_t i) noexcept;
  /// Drops stale entries at the top; returns false if the heap is empty then.
  bool prune_top() noexcept;
  void compact() noexcept;
  /// Runs the call of the popped live entry `e`; the entry's reference is released.
  void invoke(entry e);

  const reactor_time& clock_;
  std::vector<entry> heap_;
  std::vector<entry> held_;   // due entries a reactor pass postpones to the next pass
  std::size_t active_ = 0;
  std::size_t stale_ = 0;
  std::uint64_t next_seq_ = 0;
  std::uint64_t next_stamp_ = 0;
  std::uint64_t epoch_ = 0;   // bumped by schedule and by each run; see move()
};

}  // namespace twistlet::detail
