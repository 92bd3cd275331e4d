// Timer queue: heap with lazy deletion plus a FIFO of calls due at once, shared by
// manual_clock and the reactor.
#include "reactor/timer_queue.hpp"

#include <algorithm>
#include <utility>

namespace twistlet::detail {

void retain(timer_node* n) noexcept { ++n->refs; }

void release(timer_node* n) noexcept {
  if (--n->refs == 0) delete n;
}

timer_queue::timer_queue(const reactor_time& clock) : clock_(clock) {}

timer_queue::~timer_queue() {
  // Detach everything first: destroying a function may run code that touches other calls.
  std::vector<timer_task> fns;
  std::vector<timer_node*> refs;
  auto detach = [&](entry& e) {
    timer_node* n = e.node;
    if (live(e)) {
      n->st = timer_node::state::cancelled;
      fns.push_back(std::move(n->fn));
    }
    n->queue = nullptr;
    refs.push_back(n);
  };
  for (entry& e : heap_) detach(e);
  for (entry& e : held_) detach(e);
  for (std::size_t i = 0; i < ready_.size(); ++i) detach(ready_[i]);
  heap_.clear();
  held_.clear();
  ready_.clear();
  fns.clear();
  for (timer_node* n : refs) release(n);
  while (timer_node* n = free_) {
    free_ = n->next_free;
    delete n;
  }
}

timer_node* timer_queue::make_node() {
  timer_node* n = free_;
  if (!n) return new timer_node;
  free_ = n->next_free;
  --free_count_;
  n->next_free = nullptr;
  n->st = timer_node::state::pending;
  n->moved_epoch = 0;
  return n;
}

void timer_queue::release_node(timer_node* n) noexcept {
  if (--n->refs != 0) return;
  if (free_count_ == max_free_nodes) {
    delete n;
    return;
  }
  // The function went when the call ran or was cancelled.
  n->next_free = free_;
  free_ = n;
  ++free_count_;
}

delayed_call timer_queue::schedule(time_point when, timer_task&& fn, bool due_now) {
  timer_node* n = make_node();
  n->when = when;
  n->moved_from = when;
  n->seq = next_seq_++;
  n->queue = this;
  n->fn = std::move(fn);
  n->refs = 2;  // the handle and the queue entry
  delayed_call handle(n);
  const entry e{when, when, n->seq, n};
  try {
    // The FIFO must stay sorted; a clock that went back (it never should) takes the heap.
    if (due_now && (ready_.empty() || !before(e, ready_.back()))) {
      ready_.push_back(e);
      n->stamp = next_stamp_++;
    } else {
      push(e);
    }
  } catch (...) {
    n->queue = nullptr;
    n->st = timer_node::state::cancelled;
    n->fn.reset();
    --n->refs;
    throw;
  }
  ++active_;
  ++epoch_;
  return handle;
}

void timer_queue::push(entry e) {
  heap_.push_back(e);
  e.node->stamp = next_stamp_++;
  sift_up(heap_.size() - 1);
}

timer_queue::entry timer_queue::pop() noexcept {
  entry top = heap_.front();
  heap_.front() = heap_.back();
  heap_.pop_back();
  if (!heap_.empty()) sift_down(0);
  return top;
}

void timer_queue::sift_up(std::size_t i) noexcept {
  const entry e = heap_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 4;
    if (!before(e, heap_[parent])) break;
    heap_[i] = heap_[parent];
    i = parent;
  }
  heap_[i] = e;
}

void timer_queue::sift_down(std::size_t i) noexcept {
  const entry e = heap_[i];
  const std::size_t n = heap_.size();
  for (;;) {
    const std::size_t first = 4 * i + 1;
    if (first >= n) break;
    std::size_t best = first;
    const std::size_t end = std::min(first + 4, n);
    for (std::size_t c = first + 1; c < end; ++c)
      if (before(heap_[c], heap_[best])) best = c;
    if (!before(heap_[best], e)) break;
    heap_[i] = heap_[best];
    i = best;
  }
  heap_[i] = e;
}

bool timer_queue::prune_top_slow() noexcept {
  while (!heap_.empty() && !live(heap_.front())) {
    entry e = pop();
    if (stale_) --stale_;
    release_node(e.node);
  }
  return !heap_.empty();
}

bool timer_queue::prune_ready_slow() noexcept {
  while (!ready_.empty() && !live(ready_.front())) {
    entry e = ready_.pop_front();
    if (stale_) --stale_;
    release_node(e.node);
  }
  return !ready_.empty();
}

void timer_queue::compact() noexcept {
  auto keep = std::partition(heap_.begin(), heap_.end(), [](const entry& e) { return live(e); });
  for (auto it = keep; it != heap_.end(); ++it) release_node(it->node);
  heap_.erase(keep, heap_.end());
  for (std::size_t i = heap_.size() / 4 + 1; i-- > 0;)
    if (i < heap_.size()) sift_down(i);
  ready_.keep_if([this](const entry& e) {
    if (live(e)) return true;
    release_node(e.node);
    return false;
  });
  stale_ = 0;
  for (const entry& e : held_)
    if (!live(e)) ++stale_;
}

void timer_queue::cancel(timer_node& n) noexcept {
  n.st = timer_node::state::cancelled;
  --active_;
  ++stale_;
  // Destroyed outside the node: the function's captures may cancel or drop other calls.
  timer_task fn = std::move(n.fn);
  maybe_compact();
}

void timer_queue::move(timer_node& n, time_point when) {
  // Twisted's Clock re-sorts (stably) before each call and each run, so among calls moved
  // onto the same instant what counts is where they stood at the last such point.
  if (n.moved_epoch != epoch_) {
    n.moved_from = n.when;
    n.moved_epoch = epoch_;
  }
  n.when = when;
  ++stale_;
  retain(&n);
  try {
    push(entry{when, n.moved_from, n.seq, &n});
  } catch (...) {
    // Without its new entry the call could never run: treat it as cancelled.
    --n.refs;  // the queue still holds the old entry's reference
    cancel(n);
    throw;
  }
  maybe_compact();
}

void timer_queue::invoke(entry e) {
  timer_node& n = *e.node;
  // The function runs in place (the entry's reference keeps the node) and is destroyed
  // right after it, even when it throws.
  struct finish {
    timer_queue& q;
    timer_node& n;
    ~finish() {
      n.fn.reset();
      q.release_node(&n);
    }
  } done{*this, n};
  n.st = timer_node::state::called;
  --active_;
  n.fn();
}

std::size_t timer_queue::run_due() {
  std::size_t count = 0;
  for (;;) {
    const bool in_heap = prune_top();
    if (!prune_ready() && !in_heap) break;
    const bool from_ready = ready_first();
    if ((from_ready ? ready_.front() : heap_.front()).when > clock_.now()) break;
    ++epoch_;
    invoke(from_ready ? ready_.pop_front() : pop());
    ++count;
  }
  return count;
}

std::size_t timer_queue::run_pass(time_point now) {
  // Entries pushed from here on (new calls, moved calls) belong to the next pass.
  const std::uint64_t limit = next_stamp_;
  struct restore_held {
    timer_queue& q;
    ~restore_held() {
      for (entry& e : q.held_) {
        q.heap_.push_back(e);
        q.sift_up(q.heap_.size() - 1);
      }
      q.held_.clear();
    }
  } restore{*this};
  std::size_t count = 0;
  // FIFO entries are pushed in stamp order: once its front is new, so is the rest of it.
  bool ready_open = true;
  for (;;) {
    const bool in_heap = prune_top() && heap_.front().when <= now;
    bool in_ready = false;
    if (ready_open && prune_ready()) {
      const entry& f = ready_.front();
      if (f.node->stamp >= limit)
        ready_open = false;
      else
        in_ready = f.when <= now;
    }
    if (!in_heap && !in_ready) break;
    entry e;
    if (in_ready && (!in_heap || before(ready_.front(), heap_.front()))) {
      e = ready_.pop_front();
    } else {
      e = pop();
      if (e.node->stamp >= limit) {
        held_.push_back(e);
        continue;
      }
    }
    ++epoch_;
    ++count;
    try {
      invoke(e);
    } catch (const tasklet_exit&) {
      throw;  // the reactor tasklet is being killed: leave the rest for a later pass
    } catch (...) {
      report_unhandled_error(failure(std::current_exception()));
    }
  }
  return count;
}

std::vector<delayed_call> timer_queue::pending() const {
  std::vector<entry> live_entries;
  live_entries.reserve(active_);
  for (auto* list : {&heap_, &held_})
    for (const entry& e : *list)
      if (live(e)) live_entries.push_back(e);
  for (std::size_t i = 0; i < ready_.size(); ++i)
    if (live(ready_[i])) live_entries.push_back(ready_[i]);
  std::sort(live_entries.begin(), live_entries.end(), before);
  // A call moved away and back has two identical live entries; list it once.
  live_entries.erase(std::unique(live_entries.begin(), live_entries.end(),
                                 [](const entry& a, const entry& b) { return a.node == b.node; }),
                     live_entries.end());
  std::vector<delayed_call> calls;
  calls.reserve(live_entries.size());
  for (const entry& e : live_entries) {
    retain(e.node);
    calls.push_back(delayed_call(e.node));
  }
  return calls;
}

}  // namespace twistlet::detail
