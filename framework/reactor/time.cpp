// delayed_call, manual_clock, looping_call, defer_later and the add_timeout timer.
#include <twistlet/time.hpp>

#include <optional>

#include "reactor/timer_queue.hpp"

namespace twistlet {

// --- delayed_call ----------------------------------------------------------------------------

namespace {

detail::timer_node& checked_pending(detail::timer_node* n) {
  if (!n) throw std::logic_error("delayed_call: empty handle");
  if (n->st == detail::timer_node::state::cancelled) throw already_cancelled_error();
  if (n->st == detail::timer_node::state::called) throw already_run_error();
  return *n;
}

}  // namespace

delayed_call::delayed_call(const delayed_call& o) noexcept : node_(o.node_) {
  if (node_) detail::retain(node_);
}

delayed_call& delayed_call::operator=(const delayed_call& o) noexcept {
  delayed_call(o).swap_with(*this);
  return *this;
}

delayed_call& delayed_call::operator=(delayed_call&& o) noexcept {
  delayed_call(std::move(o)).swap_with(*this);
  return *this;
}

delayed_call::~delayed_call() {
  if (node_) detail::release(node_);
}

void delayed_call::swap_with(delayed_call& o) noexcept { std::swap(node_, o.node_); }

bool delayed_call::active() const noexcept { return node_ && node_->st == detail::timer_node::state::pending; }

bool delayed_call::called() const noexcept { return node_ && node_->st == detail::timer_node::state::called; }

bool delayed_call::cancelled() const noexcept {
  return node_ && node_->st == detail::timer_node::state::cancelled;
}

void delayed_call::cancel() {
  detail::timer_node& n = checked_pending(node_);
  n.queue->cancel(n);
}

void delayed_call::reset(duration from_now) {
  detail::timer_node& n = checked_pending(node_);
  n.queue->move(n, n.queue->now() + from_now);
}

void delayed_call::delay(duration extra) {
  detail::timer_node& n = checked_pending(node_);
  n.queue->move(n, n.when + extra);
}

time_point delayed_call::time() const noexcept { return node_ ? node_->when : time_point{}; }

// --- reactor_time ----------------------------------------------------------------------------

delayed_call reactor_time::call_later_task(duration delay, detail::timer_task&& fn) {
  // std::function needs a copyable target; the task is shared instead of copied.
  return call_later(delay, [task = std::make_shared<detail::timer_task>(std::move(fn))] { (*task)(); });
}

// --- manual_clock ----------------------------------------------------------------------------

manual_clock::manual_clock() : queue_(std::make_unique<detail::timer_queue>(*this)) {}

manual_clock::~manual_clock() = default;

time_point manual_clock::now() const { return now_; }

delayed_call manual_clock::call_later(duration delay, std::function<void()> fn) {
  if (delay < duration::zero()) throw std::invalid_argument("manual_clock::call_later: negative delay");
  if (!fn) throw std::invalid_argument("manual_clock::call_later: empty function");
  return queue_->schedule(now_ + delay, detail::timer_task(std::move(fn)), delay == duration::zero());
}

delayed_call manual_clock::call_later_task(duration delay, detail::timer_task&& fn) {
  if (delay < duration::zero()) throw std::invalid_argument("manual_clock::call_later: negative delay");
  return queue_->schedule(now_ + delay, std::move(fn), delay == duration::zero());
}

void manual_clock::advance(duration d) {
  now_ += d;
  queue_->run_due();
}

void manual_clock::pump(std::initializer_list<duration> steps) {
  for (duration d : steps) advance(d);
}

std::vector<delayed_call> manual_clock::pending_calls() const { return queue_->pending(); }

// --- looping_call ----------------------------------------------------------------------------

struct looping_call::impl : std::enable_shared_from_this<impl> {
  impl(reactor_time& c, counted_fn f, bool counted) : clock(c), fn(std::move(f)), with_count(counted) {}

  reactor_time& clock;
  counted_fn fn;
  bool with_count;
  bool running = false;
  bool run_at_start = false;
  duration interval{};
  time_point start_time{};
  std::optional<time_point> last_call;  // with_count: when fn last ran
  delayed_call next;                    // the scheduled call, empty while fn runs or is pending
  std::optional<deferred<void>> result; // what start() returned, until it fires

  long long interval_of(time_point t) const { return (t - start_time) / interval; }

  // Twisted's withCount arithmetic: intervals elapsed since the previous call (or since one
  // interval before start() when the first call was immediate).
  std::size_t count_now() {
    const time_point t = clock.now();
    if (interval == duration::zero()) {
      last_call = t;
      return 1;
    }
    time_point last = last_call ? *last_call : start_time - (run_at_start ? interval : duration::zero());
    const long long n = interval_of(t) - interval_of(last);
    if (n <= 0) return 0;
    last_call = t;
    return static_cast<std::size_t>(n);
  }

  void tick() {
    next = delayed_call();
    deferred<void> d;
    if (with_count) {
      const std::size_t n = count_now();
      d = n ? fn(n) : succeed();
    } else {
      d = fn(1);
    }
    d.add_both([self = shared_from_this()](outcome<void> o) { self->settled(o); });
  }

  void settled(const outcome<void>& o) {
    if (!o.has_value()) {
      running = false;
      fire(o.error());
    } else if (running) {
      schedule_from(clock.now());
    } else {
      fire(std::nullopt);
    }
  }

  void fire(std::optional<failure> f) {
    if (!result) return;
    deferred<void> d = std::move(*result);
    result.reset();
    if (f)
      d.errback(std::move(*f));
    else
      d.callback();
  }

  void schedule_from(time_point when) {
    duration wait = duration::zero();
    if (interval != duration::zero()) {
      // The next boundary strictly after `when`: missed intervals are skipped, not replayed.
      const duration into = (when - start_time) % interval;
      wait = interval - (into < duration::zero() ? into + interval : into);
    }
    next = clock.call_later(wait, [self = shared_from_this()] { self->tick(); });
  }

  void stop() {
    running = false;
    if (next) {
      next.cancel();
      next = delayed_call();
      fire(std::nullopt);
    }
  }
};

looping_call::looping_call(reactor_time& clock, counted_fn fn, bool with_count)
    : impl_(std::make_shared<impl>(clock, std::move(fn), with_count)) {}

looping_call::looping_call(looping_call&&) noexcept = default;

looping_call& looping_call::operator=(looping_call&& o) noexcept {
  if (this != &o) {
    if (impl_ && impl_->running) impl_->stop();
    impl_ = std::move(o.impl_);
  }
  return *this;
}

looping_call::~looping_call() {
  if (impl_ && impl_->running) impl_->stop();
}

deferred<void> looping_call::start(duration interval, bool now) {
  if (!impl_) throw std::logic_error("looping_call: moved from");
  if (impl_->running) throw std::logic_error("looping_call::start: already running");
  if (interval < duration::zero()) throw std::invalid_argument("looping_call::start: negative interval");
  impl& s = *impl_;
  s.running = true;
  s.interval = interval;
  s.start_time = s.clock.now();
  s.run_at_start = now;
  s.last_call.reset();
  deferred<void> d;
  s.result = d;
  if (now)
    s.tick();
  else
    s.schedule_from(s.start_time);
  return d;
}

void looping_call::stop() {
  if (!impl_ || !impl_->running) throw std::logic_error("looping_call::stop: not running");
  impl_->stop();
}

void looping_call::reset() {
  if (!impl_ || !impl_->running) throw std::logic_error("looping_call::reset: not running");
  impl& s = *impl_;
  if (s.next) {
    s.next.cancel();
    s.next = delayed_call();
    s.start_time = s.clock.now();
    s.schedule_from(s.start_time);
  }
}

bool looping_call::running() const noexcept { return impl_ && impl_->running; }

duration looping_call::interval() const noexcept { return impl_ ? impl_->interval : duration::zero(); }

// --- defer_later, add_timeout ------------------------------------------------------------------

deferred<void> defer_later(reactor_time& clock, duration delay) {
  return defer_later(clock, delay, [] {});
}

}  // namespace twistlet
