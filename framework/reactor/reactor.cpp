#include <twistlet/reactor.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/scheduler.hpp"
#include "reactor/timer_queue.hpp"

namespace twistlet {
namespace detail {

namespace {
thread_local reactor* t_reactor = nullptr;
}

// ---- the stall detector ---------------------------------------------------------------------
//
// A thread that watches the scheduler's progress mark (changed by every tasklet switch and
// every pass of the reactor loop). If it stays put for the threshold while the loop is busy,
// the thread is interrupted with the capture signal to learn which tasklet runs and where.
// While the loop waits in the kernel (or run() is not running) the monitor sleeps on its
// condition variable and the loop wakes it when it gets busy again; so an idle process is
// not woken periodically. (An Asio handler runs inside the kernel wait's run_one(), where the
// loop counts as idle: I/O handlers only wake tasklets, and the work is done in those.)
class stall_monitor {
 public:
  stall_monitor(scheduler& s, duration threshold, std::function<void(const stall_report&)> sink)
      : sched_(s), serial_(s.serial()), threshold_(threshold), sink_(std::move(sink)) {
    thread_ = std::thread([this] { watch(); });
  }
  ~stall_monitor() {
    {
      std::lock_guard l(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  stall_monitor(const stall_monitor&) = delete;
  stall_monitor& operator=(const stall_monitor&) = delete;

  /// The loop is about to wait in the kernel, or run() ends: nothing to watch.
  void quiet() noexcept { sched_.set_loop_flags(scheduler::loop_running | scheduler::loop_idle); }
  void stopped() noexcept { sched_.set_loop_flags(0); }
  /// The loop has work. The flag store and the load of sleeping_ are sequentially consistent,
  /// as are the monitor's store of sleeping_ and its load of the flags: one of the two sides
  /// always sees the other, so the monitor never sleeps through a busy loop.
  void busy() noexcept {
    sched_.set_loop_flags(scheduler::loop_running);
    if (sleeping_.load(std::memory_order_seq_cst)) {
      std::lock_guard l(m_);
      cv_.notify_one();
    }
  }

 private:
  bool is_quiet() const noexcept { return sched_.loop_flags() != scheduler::loop_running; }

  void watch() {
    using clock = std::chrono::steady_clock;
    const duration period = std::clamp<duration>(threshold_ / 4, std::chrono::milliseconds(1), std::chrono::seconds(1));
    std::unique_lock l(m_);
    scheduler::progress_mark last = sched_.progress();
    clock::time_point since = clock::now();
    bool reported = false;
    while (!stop_) {
      if (is_quiet()) {
        sleeping_.store(true, std::memory_order_seq_cst);
        cv_.wait(l, [this] { return stop_ || !is_quiet(); });
        sleeping_.store(false, std::memory_order_relaxed);
        last = sched_.progress();
        since = clock::now();
        reported = false;
        continue;
      }
      cv_.wait_for(l, period);
      if (stop_) break;
      const scheduler::progress_mark p = sched_.progress();
      const clock::time_point now = clock::now();
      if (p != last || is_quiet()) {
        last = p;
        since = now;
        reported = false;
        continue;
      }
      if (reported || now - since < threshold_) continue;
      reported = true;
      l.unlock();
      report(now - since, last);
      l.lock();
    }
  }

  void report(duration stuck, scheduler::progress_mark progress_at) {
    stall_report r;
    thread_capture cap;
    bool captured = false;
    {
      auto lock = lock_registry();
      for (scheduler* s : registered_schedulers())
        if (s->serial() == serial_) captured = capture_thread(*s, cap, std::chrono::milliseconds(500));
    }
    // The stall ended before the capture: what it shows is not the culprit.
    if (sched_.progress() != progress_at) return;
    r.running_for = stuck;
    if (captured && cap.has_tasklet) {
      r.tasklet_id = cap.tasklet_id;
      r.tasklet_name.assign(cap.name, cap.name_len);
      r.backtrace = format_frames(cap.frames, cap.depth, "");
    }
    if (sink_) {
      try {
        sink_(r);
      } catch (...) {
        std::fputs("twistlet: the stall report callback threw; its exception is ignored\n", stderr);
      }
      return;
    }
    std::string text = "twistlet: stall: ";
    if (r.tasklet_id) {
      text += "tasklet " + std::to_string(r.tasklet_id);
      if (!r.tasklet_name.empty()) text += " '" + r.tasklet_name + "'";
    } else {
      text += "a tasklet (the thread did not answer the capture signal)";
    }
    text += " has run for " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(stuck).count()) +
            " ms without yielding (threshold " +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(threshold_).count()) + " ms)\n";
    std::istringstream lines(r.backtrace);
    for (std::string line; std::getline(lines, line);) text += "    " + line + "\n";
    std::fputs(text.c_str(), stderr);
  }

  scheduler& sched_;
  std::uint64_t serial_;
  duration threshold_;
  std::function<void(const stall_report&)> sink_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> sleeping_{false};
  std::thread thread_;
};

class reactor_impl {
 public:
  reactor_impl(reactor& owner, reactor_options opts)
      : owner_(owner), opts_(opts), io_(1), timers_(owner), wake_timer_(io_), owner_token_(owner_token()) {}

  ~reactor_impl() {
    stop_pool();
    std::lock_guard lock(incoming_mutex_);
    incoming_.clear();
  }

  // Must finish while the owning reactor is still usable: a job that is running posts its
  // result back through reactor::post_from_thread().
  void stop_pool() noexcept {
    {
      std::lock_guard lock(pool_mutex_);
      pool_stopping_ = true;
      // Jobs not started are dropped here, on the reactor's thread, with what they own.
      pool_jobs_.clear();
    }
    pool_cv_.notify_all();
    for (auto& t : pool_threads_) t.join();
    pool_threads_.clear();
  }

  void loop();
  std::size_t run_io(bool wait);
  bool poll_io(time_point now);
  time_point read_clock() noexcept {
    const time_point t = std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
    latest_.store(t.time_since_epoch().count(), std::memory_order_relaxed);
    return t;
  }
  time_point latest() const noexcept { return time_point(duration(latest_.load(std::memory_order_relaxed))); }
  void arm(time_point deadline);
  void disarm();
  bool drain_incoming();
  void tick();
  void pool_worker();

  reactor& owner_;
  reactor_options opts_;
  asio::io_context io_;
  timer_queue timers_;
  asio::steady_timer wake_timer_;
  std::optional<time_point> armed_;
  std::uint64_t arm_generation_ = 0;
  const void* owner_token_;

  std::mutex incoming_mutex_;
  std::vector<unique_task> incoming_;
  std::vector<unique_task> batch_;
  std::atomic<bool> has_incoming_{false};
  bool wake_posted_ = false;

  std::mutex pool_mutex_;
  std::condition_variable pool_cv_;
  std::deque<unique_task> pool_jobs_;
  std::vector<std::thread> pool_threads_;
  bool pool_stopping_ = false;

  // The latest steady_clock reading taken through reactor::now(), from any thread. Any
  // reading is a lower bound of the present, so a timer due by it is due: the loop consults
  // the clock itself only when this cannot tell. (A call_later(0) has just read the clock.)
  std::atomic<duration::rep> latest_{0};
  // While the loop stays busy, Asio is polled (a system call) only every so many passes or
  // so much time; see poll_io().
  std::uint32_t passes_since_poll_ = 0;
  time_point last_poll_{};

  bool running_ = false;
  bool stopping_ = false;
  tasklet tasklet_;
  std::unique_ptr<stall_monitor> monitor_;  // with reactor_options::stall_threshold only
  scheduler* remote_sched_ = nullptr;       // where dump_all_threads() can reach us
  const std::function<bool()>* until_ = nullptr;
  bool until_stalled_ = false;
  delayed_call interval_call_;
};

void reactor_impl::arm(time_point deadline) {
  if (armed_ && *armed_ == deadline) return;
  armed_ = deadline;
  const std::uint64_t generation = ++arm_generation_;
  wake_timer_.expires_at(std::chrono::steady_clock::time_point(deadline.time_since_epoch()));
  wake_timer_.async_wait([this, generation](const asio::error_code&) {
    if (generation == arm_generation_) armed_.reset();
  });
}

void reactor_impl::disarm() {
  if (!armed_) return;
  armed_.reset();
  ++arm_generation_;
  wake_timer_.cancel();
}

bool reactor_impl::drain_incoming() {
  if (!has_incoming_.load(std::memory_order_acquire)) return false;
  {
    std::lock_guard lock(incoming_mutex_);
    batch_.swap(incoming_);
    has_incoming_.store(false, std::memory_order_relaxed);
    wake_posted_ = false;
  }
  // Only the calls present when draining began run now; later ones wait for the next pass.
  std::size_t i = 0;
  try {
    for (; i < batch_.size(); ++i) {
      unique_task task = std::move(batch_[i]);
      try {
        task();
      } catch (const tasklet_exit&) {
        throw;
      } catch (...) {
        report_unhandled_error(failure(std::current_exception()));
      }
    }
  } catch (...) {
    // The reactor tasklet is being killed: the calls not yet run go back to the queue front.
    std::lock_guard lock(incoming_mutex_);
    incoming_.insert(incoming_.begin(), std::make_move_iterator(batch_.begin() + static_cast<std::ptrdiff_t>(i + 1)),
                     std::make_move_iterator(batch_.end()));
    if (!incoming_.empty()) has_incoming_.store(true, std::memory_order_relaxed);
    batch_.clear();
    throw;
  }
  batch_.clear();
  return true;
}

std::size_t reactor_impl::run_io(bool wait) {
  // Asio stops the context whenever its count of outstanding work drops to zero (the last
  // timer wait or posted wake-up handled), and a stopped context returns from run_one() at
  // once even after new work (a timer armed since) arrived: that would read as "nothing can
  // ever happen".
  if (wait && io_.stopped()) io_.restart();
  // Like timers, an I/O handler that throws is reported and the loop goes on; only a kill of
  // the reactor tasklet passes through.
  for (;;) {
    try {
      const std::size_t n = wait ? io_.run_one() : io_.poll();
      if (!wait && io_.stopped()) io_.restart();
      return n;
    } catch (const tasklet_exit&) {
      throw;
    } catch (...) {
      report_unhandled_error(failure(std::current_exception()));
      if (wait) return 1;
    }
  }
}

// Polling Asio costs an epoll_wait system call, about as much as the rest of a pass. While
// timers or tasklets keep the loop busy, it polls once every max_passes_between_polls
// passes, and sooner once max_time_between_polls has gone by since the last poll (then every
// pass, if passes are slow), so I/O waits a bounded number of passes and never long.
// `now` may lag behind: the clock is read whenever a timer is created and whenever tasklets
// had their turns.
bool reactor_impl::poll_io(time_point now) {
  constexpr std::uint32_t max_passes_between_polls = 32;
  constexpr duration max_time_between_polls = std::chrono::microseconds(100);
  if (++passes_since_poll_ < max_passes_between_polls && now - last_poll_ < max_time_between_polls) return false;
  passes_since_poll_ = 0;
  last_poll_ = now;
  run_io(false);
  return true;
}

void reactor_impl::tick() {
  interval_call_ = timers_.schedule(owner_.now() + opts_.schedule_interval, timer_task([this] {
                                      tick();
                                      twistlet::schedule();
                                    }));
}

void reactor_impl::loop() {
  // Also when the reactor tasklet is killed (an exception escaped reactor::run()): a tick or
  // an armed wake-up left behind would run twice over, or keep run_until() from seeing that
  // nothing is left, in the next run().
  struct cleanup {
    reactor_impl& impl;
    ~cleanup() {
      if (impl.interval_call_.active()) impl.interval_call_.cancel();
      impl.interval_call_ = delayed_call();
      impl.disarm();
    }
  } on_exit{*this};
  if (opts_.schedule_interval > duration::zero() && !until_) tick();
  // The earliest timer, still valid from the end of the previous pass if no code has run
  // since (no cross-thread call, no Asio handler, no tasklet turn).
  std::optional<time_point> next;
  bool next_known = false;
  scheduler& sched = scheduler::get();
  while (!stopping_) {
    if (monitor_) sched.note_pass();
    if (drain_incoming() || !next_known) next = timers_.earliest();
    next_known = false;
    if (next) {
      time_point now = latest();
      if (*next > now) now = read_clock();
      if (*next <= now) timers_.run_pass(now);
    }
    if (stopping_ || (until_ && (*until_)())) break;
    if (getruncount() > 1) {
      // Others are runnable: look at I/O without waiting, then give each of them a turn.
      // Their turns may take long, so the clock is read for poll_io().
      poll_io(read_clock());
      twistlet::schedule();
      continue;
    }
    next = timers_.earliest();
    if (next && (*next <= latest() || *next <= read_clock())) {
      // Already due: a kernel timer would only add a system call and its latency.
      next_known = !poll_io(latest());
      continue;
    }
    if (next)
      arm(*next);
    else
      disarm();
    passes_since_poll_ = 0;
    last_poll_ = latest();
    if (monitor_) monitor_->quiet();
    const std::size_t handled = run_io(true);
    if (monitor_) monitor_->busy();
    if (handled == 0) {
      // Asio had no work at all: no I/O pending, no timer armed, nothing posted, no pool job,
      // no keep_alive token. In run() our work guard rules this out; in run_until() it means
      // nothing can ever make progress.
      io_.restart();
      if (until_) {
        until_stalled_ = true;
        break;
      }
    }
  }
}

void reactor_impl::pool_worker() {
  for (;;) {
    unique_task job;
    {
      std::unique_lock lock(pool_mutex_);
      pool_cv_.wait(lock, [this] { return pool_stopping_ || !pool_jobs_.empty(); });
      if (pool_jobs_.empty()) return;
      job = std::move(pool_jobs_.front());
      pool_jobs_.pop_front();
    }
    job();
  }
}

}  // namespace detail

reactor::reactor() : reactor(reactor_options{}) {}

reactor::reactor(reactor_options opts) {
  if (detail::t_reactor) throw std::logic_error("reactor: this thread already has a reactor");
  impl_ = std::make_unique<detail::reactor_impl>(*this, opts);
  detail::t_reactor = this;
  // debug::dump_all_threads() reaches this thread through the reactor (answered while it
  // runs). Registered once, not per run(): a main tasklet's block_on runs it per call.
  impl_->remote_sched_ = &detail::scheduler::get();
  impl_->remote_sched_->set_remote(this, [](void* self, std::function<void()> fn) {
    static_cast<reactor*>(self)->call_from_thread(std::move(fn));
  });
}

reactor::~reactor() {
  // Only if the scheduler is still there: a reactor that outlives its thread's scheduler
  // (a static one on the main thread) has nothing to undo.
  if (detail::scheduler* s = detail::scheduler::peek(); s && s == impl_->remote_sched_) s->set_remote(nullptr, nullptr);
  impl_->stop_pool();
  impl_.reset();
  if (detail::t_reactor == this) detail::t_reactor = nullptr;
}

asio::io_context& reactor::context() noexcept { return impl_->io_; }

time_point reactor::now() const { return impl_->read_clock(); }

delayed_call reactor::call_later(duration delay, std::function<void()> fn) {
  TWISTLET_CHECK_OWNER(impl_->owner_token_, "reactor::call_later: the reactor");
  if (delay < duration::zero()) throw std::invalid_argument("reactor::call_later: negative delay");
  if (!fn) throw std::invalid_argument("reactor::call_later: empty function");
  return impl_->timers_.schedule(now() + delay, detail::timer_task(std::move(fn)), delay == duration::zero());
}

delayed_call reactor::call_later_task(duration delay, detail::timer_task&& fn) {
  TWISTLET_CHECK_OWNER(impl_->owner_token_, "reactor::call_later: the reactor");
  if (delay < duration::zero()) throw std::invalid_argument("reactor::call_later: negative delay");
  return impl_->timers_.schedule(now() + delay, std::move(fn), delay == duration::zero());
}

void reactor::call_from_thread(std::function<void()> fn) {
  if (!fn) throw std::invalid_argument("reactor::call_from_thread: empty function");
  post_from_thread(std::move(fn));
}

void reactor::post_from_thread(detail::unique_task task) {
  bool wake;
  {
    std::lock_guard lock(impl_->incoming_mutex_);
    impl_->incoming_.push_back(std::move(task));
    impl_->has_incoming_.store(true, std::memory_order_release);
    wake = !impl_->wake_posted_;
    impl_->wake_posted_ = true;
  }
  // One wake-up per batch: the loop drains everything queued when it wakes.
  if (wake) asio::post(impl_->io_, [] {});
}

void reactor::post_to_pool(detail::unique_task job) {
  detail::reactor_impl& impl = *impl_;
  // The work guard keeps run_until() from declaring a deadlock while the job may still
  // post its result back.
  auto guarded = [work = asio::make_work_guard(impl.io_), job = std::move(job), this]() mutable {
    try {
      job();
    } catch (...) {
      post_from_thread([e = std::current_exception()] { report_unhandled_error(failure(e)); });
    }
  };
  {
    std::lock_guard lock(impl.pool_mutex_);
    if (impl.pool_threads_.empty()) {
      const std::size_t n = std::max<std::size_t>(1, impl.opts_.thread_pool_size);
      for (std::size_t i = 0; i < n; ++i) impl.pool_threads_.emplace_back([&impl] { impl.pool_worker(); });
    }
    impl.pool_jobs_.push_back(std::move(guarded));
  }
  impl.pool_cv_.notify_one();
}

void reactor::run() {
  TWISTLET_CHECK_OWNER(impl_->owner_token_, "reactor::run: the reactor");
  detail::reactor_impl& impl = *impl_;
  if (impl.running_) throw std::logic_error("reactor::run: the reactor is already running");
  impl.running_ = true;
  impl.stopping_ = false;
  detail::scheduler& sched = detail::scheduler::get();
  if (impl.opts_.stall_threshold > duration::zero()) {
    if (!impl.monitor_)
      impl.monitor_ = std::make_unique<detail::stall_monitor>(sched, impl.opts_.stall_threshold, impl.opts_.on_stall);
    impl.monitor_->busy();
  }
  struct leave_run {
    detail::reactor_impl& impl;
    ~leave_run() {
      if (impl.monitor_) impl.monitor_->stopped();
    }
  } on_leave{impl};
  if (impl.io_.stopped()) impl.io_.restart();  // Asio stops itself whenever it runs out of work
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  if (!impl.until_) work.emplace(asio::make_work_guard(impl.io_));
  impl.tasklet_ = tasklet::spawn([&impl] { impl.loop(); }, {.name = "reactor"});
  try {
    // The caller is the watchdog: this returns once the reactor tasklet has ended and the
    // tasklets it left runnable have had their turns.
    twistlet::run();
  } catch (...) {
    impl.stopping_ = true;
    tasklet reactor_tasklet = std::move(impl.tasklet_);
    impl.running_ = false;
    if (reactor_tasklet.alive()) {
      try {
        reactor_tasklet.kill();
      } catch (...) {
      }
    }
    throw;
  }
  impl.tasklet_ = tasklet();
  impl.running_ = false;
}

void reactor::run_until(const std::function<bool()>& done) {
  detail::reactor_impl& impl = *impl_;
  if (done()) return;
  if (impl.running_) throw std::logic_error("reactor::run_until: the reactor is already running");
  impl.until_ = &done;
  impl.until_stalled_ = false;
  struct reset_until {
    detail::reactor_impl& impl;
    ~reset_until() { impl.until_ = nullptr; }
  } reset{impl};
  run();
  if (done()) return;
  if (impl.until_stalled_)
    throw deadlock_error(
        "deadlock: the main tasklet waits for a result that nothing can deliver: no tasklet is runnable and the "
        "reactor has no timer, I/O, thread-pool job or keep_alive token");
  // Only stop() ends the loop otherwise; the caller must not go on as if it had its result.
  throw deadlock_error("deadlock: the reactor was stopped while the main tasklet still waits for a result");
}

void reactor::stop() {
  TWISTLET_CHECK_OWNER(impl_->owner_token_, "reactor::stop: the reactor");
  if (impl_->running_) impl_->stopping_ = true;
}

bool reactor::running() const noexcept { return impl_->running_; }

tasklet reactor::reactor_tasklet() const noexcept { return impl_->running_ ? impl_->tasklet_ : tasklet(); }

bool reactor::in_reactor_tasklet() const noexcept {
  return impl_->running_ && impl_->tasklet_.impl() == detail::current_tasklet();
}

reactor* reactor::current() noexcept { return detail::t_reactor; }

namespace detail {
struct reactor_access {
  static const reactor_impl& impl(const reactor& r) noexcept { return *r.impl_; }
};

reactor_role current_reactor_role(const tasklet_impl* self) noexcept {
  reactor* r = t_reactor;
  if (!r) return {};
  const reactor_impl& impl = reactor_access::impl(*r);
  return {r, impl.running_, impl.running_ && impl.tasklet_.impl() == self};
}
}  // namespace detail

reactor::keep_alive::keep_alive(reactor& r)
    : guard_(std::make_shared<asio::executor_work_guard<asio::io_context::executor_type>>(
          asio::make_work_guard(r.context()))) {}

reactor::keep_alive::keep_alive(keep_alive&& other) noexcept = default;

reactor::keep_alive::~keep_alive() = default;

}  // namespace twistlet
