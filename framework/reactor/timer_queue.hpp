// The timer queue behind manual_clock and the Asio reactor: a 4-ary heap keyed by
// (due time, where a moved call came from, scheduling order), with lazy deletion: cancelling
// or moving a call only marks its entry stale, and stale entries are dropped when they
// surface (or all at once when they outnumber the live ones).
//
// Calls scheduled as already due (call_later(0)) go to a FIFO beside the heap instead: they
// arrive in key order, so the FIFO stays sorted, and the next call is the earlier of the
// heap's top and the FIFO's front. A hop through the loop then costs no heap operations,
// however many far-off timers (timeouts) the heap holds.
//
// Nodes whose last reference the queue drops go to a bounded free list, so that steady
// scheduling allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <twistlet/time.hpp>

namespace twistlet::detail {

class timer_queue;

/// The shared state of a delayed_call.
struct timer_node {
  enum class state : std::uint8_t { pending, called, cancelled };

  std::uint32_t refs = 1;       // delayed_call handles and queue entries
  state st = state::pending;
  time_point when;
  time_point moved_from;        // the due time before the last move (ordering key)
  std::uint64_t moved_epoch = 0;
  std::uint64_t seq = 0;        // scheduling order
  std::uint64_t stamp = 0;      // push order of its live entry; tells reactor passes what is new
  timer_queue* queue = nullptr; // null once the queue is gone; only read while pending
  timer_node* next_free = nullptr;
  timer_task fn;
};

void retain(timer_node* n) noexcept;
/// Drops a reference held outside the queue (a delayed_call); the last one deletes the node.
void release(timer_node* n) noexcept;

/// A growable ring buffer: a FIFO without the per-block allocations of std::deque.
template <class E>
class ring {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  E& front() noexcept { return buf_[head_]; }
  E& back() noexcept { return (*this)[size_ - 1]; }
  E& operator[](std::size_t i) noexcept { return buf_[(head_ + i) & (buf_.size() - 1)]; }
  const E& operator[](std::size_t i) const noexcept { return buf_[(head_ + i) & (buf_.size() - 1)]; }
  void push_back(const E& e) {
    if (size_ == buf_.size()) grow();
    buf_[(head_ + size_) & (buf_.size() - 1)] = e;
    ++size_;
  }
  E pop_front() noexcept {
    E e = buf_[head_];
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
    return e;
  }
  /// Keeps the elements for which `keep(e)` is true, in order.
  template <class P>
  void keep_if(P keep) noexcept {
    std::size_t out = 0;
    for (std::size_t i = 0; i < size_; ++i)
      if (keep((*this)[i])) (*this)[out++] = (*this)[i];
    size_ = out;
  }
  void clear() noexcept {
    head_ = 0;
    size_ = 0;
  }

 private:
  void grow() {
    std::vector<E> b(buf_.empty() ? 16 : buf_.size() * 2);  // a power of two, for the mask
    for (std::size_t i = 0; i < size_; ++i) b[i] = (*this)[i];
    buf_.swap(b);
    head_ = 0;
  }
  std::vector<E> buf_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

/// Timers of one clock. Single-threaded, like its clock.
class timer_queue {
 public:
  /// `clock` provides now() for delayed_call::reset().
  explicit timer_queue(const reactor_time& clock);
  /// Pending calls become cancelled; their functions are destroyed.
  ~timer_queue();
  timer_queue(const timer_queue&) = delete;
  timer_queue& operator=(const timer_queue&) = delete;

  /// Schedules `fn` at `when`. `due_now`: `when` is not after the clock's present (a zero
  /// delay), so the call may take the FIFO.
  delayed_call schedule(time_point when, timer_task&& fn, bool due_now = false);

  /// The earliest due time of an active call.
  std::optional<time_point> earliest() {
    std::optional<time_point> t;
    const bool in_heap = prune_top();
    if (prune_ready() || in_heap) t = (ready_first() ? ready_.front() : heap_.front()).when;
    // Empty between reactor passes, where the loop asks; cheap to honour anyway.
    for (const entry& e : held_)
      if (live(e) && (!t || e.when < *t)) t = e.when;
    return t;
  }

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
  /// Drops stale entries at the top of the heap; returns false if the heap is empty then.
  bool prune_top() noexcept { return !heap_.empty() && (live(heap_.front()) || prune_top_slow()); }
  bool prune_top_slow() noexcept;
  /// Drops stale entries at the front of the FIFO; returns false if it is empty then.
  bool prune_ready() noexcept { return !ready_.empty() && (live(ready_.front()) || prune_ready_slow()); }
  bool prune_ready_slow() noexcept;
  /// Whether the FIFO's front (rather than the heap's top) runs next; both must be pruned
  /// and at least one non-empty.
  bool ready_first() noexcept { return !ready_.empty() && (heap_.empty() || before(ready_.front(), heap_.front())); }
  void maybe_compact() noexcept {
    if (stale_ > compact_threshold && stale_ > (heap_.size() + ready_.size()) / 2) compact();
  }
  void compact() noexcept;
  /// Runs the call of the popped live entry `e`; the entry's reference is released.
  void invoke(entry e);

  timer_node* make_node();
  /// Drops a reference the queue held; the last one recycles the node.
  void release_node(timer_node* n) noexcept;

  // AddressSanitizer builds free every node, so that it sees any use after free.
#if defined(__SANITIZE_ADDRESS__)
  static constexpr std::size_t max_free_nodes = 0;
#else
  static constexpr std::size_t max_free_nodes = 1024;
#endif
  // Stale entries are swept all at once beyond this many (and more than the live ones).
  static constexpr std::size_t compact_threshold = 1024;

  const reactor_time& clock_;
  std::vector<entry> heap_;
  ring<entry> ready_;         // calls scheduled as due at once, in key order
  std::vector<entry> held_;   // due heap entries a reactor pass postpones to the next pass
  timer_node* free_ = nullptr;
  std::size_t free_count_ = 0;
  std::size_t active_ = 0;
  std::size_t stale_ = 0;
  std::uint64_t next_seq_ = 0;
  std::uint64_t next_stamp_ = 0;
  std::uint64_t epoch_ = 0;   // bumped by schedule and by each run; see move()
};

}  // namespace twistlet::detail
