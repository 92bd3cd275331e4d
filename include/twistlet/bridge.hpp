// twistlet bridge layer: sequential code over the reactor. A tasklet blocks on a deferred
// (block_on) while the reactor tasklet keeps serving everyone else; functions become tasklets
// whose results are deferreds (deferred_tasklet) or plain values (blocking_tasklet).
#pragma once

#include <twistlet/deferred.hpp>
#include <twistlet/reactor.hpp>
#include <twistlet/tasklet.hpp>
#include <twistlet/time.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace twistlet {

namespace detail {

/// Throws reactor_blocked_error naming `what` if the caller is this thread's reactor tasklet.
void check_may_block(const char* what);

/// What a blocking call needs to know about its caller, found with one call.
struct block_context {
  tasklet_impl* self;
  /// The thread's reactor when the caller is the main tasklet outside reactor::run(): then
  /// the caller drives it instead of blocking.
  reactor* drive;
};
/// check_may_block(what), then the caller's block_context.
block_context prepare_block(const char* what);

/// Reports a failure that reached block_on after its waiter left, unless it is the
/// cancelled_error the waiter's own cancel() produced.
void report_orphaned(const failure& f, bool cancelled_by_waiter) noexcept;

template <class T>
class waiter_link;

/// The waiting side of block_on. It lives on the waiter's stack (no allocation per wait) and
/// is what the waiter blocks on; the consumer stage in the deferred's chain reaches it
/// through a waiter_link, and either side cuts the link when it goes first.
template <class T>
struct block_waiter final : wait_target {
  waiter_link<T>* link = nullptr;   // the consumer stage, until it runs or the waiter leaves
  tasklet_impl* blocked = nullptr;  // the tasklet blocked in block_current, if any
  bool left = false;                // an exception was thrown into the blocked waiter
  std::optional<outcome<T>> result;

  block_waiter() = default;
  block_waiter(const block_waiter&) = delete;
  block_waiter& operator=(const block_waiter&) = delete;

  void abandon(tasklet_impl*) noexcept override {
    // The waiter resumes with the exception; a result that comes meanwhile is an orphan.
    left = true;
    blocked = nullptr;
  }
  std::string describe() const override { return "a deferred (block_on)"; }
};

/// The consumer block_on attaches to the deferred. It sits in the chain (which may outlive
/// the waiter) and keeps its block_waiter's pointer to it current when it is moved there.
template <class T>
class waiter_link {
 public:
  explicit waiter_link(block_waiter<T>& w) noexcept : w_(&w) { w.link = this; }
  waiter_link(waiter_link&& o) noexcept : w_(std::exchange(o.w_, nullptr)), cancelled_by_waiter_(o.cancelled_by_waiter_) {
    if (w_) w_->link = this;
  }
  waiter_link(const waiter_link&) = delete;
  waiter_link& operator=(const waiter_link&) = delete;
  waiter_link& operator=(waiter_link&&) = delete;
  ~waiter_link() {
    if (w_) w_->link = nullptr;
  }

  /// The waiter left before the result came and cancels the deferred.
  void detach() noexcept {
    w_ = nullptr;
    cancelled_by_waiter_ = true;
  }

  void operator()(outcome<T>&& o) {
    block_waiter<T>* w = std::exchange(w_, nullptr);
    if (w) w->link = nullptr;
    if (!w || w->left) {
      if (!o.has_value()) report_orphaned(o.error(), cancelled_by_waiter_);
      return;
    }
    w->result.emplace(std::move(o));
    // Nothing of the waiter may be touched after this: it runs now and its frame goes.
    if (tasklet_impl* t = std::exchange(w->blocked, nullptr)) wake_now(t);
  }

 private:
  block_waiter<T>* w_;
  bool cancelled_by_waiter_ = false;
};

/// block_on from the main tasklet outside reactor::run(): drives the reactor until `done`.
void drive_reactor_until(reactor& r, const std::function<bool()>& done);

template <class T>
T take_result(std::optional<outcome<T>>& result) {
  if constexpr (std::is_void_v<T>) {
    result->value();
  } else {
    return std::move(*result).value();
  }
}

template <class D>
struct deferred_value;
template <class U>
struct deferred_value<deferred<U>> {
  using type = U;
};
template <class R>
using tasklet_result_t = typename std::conditional_t<is_deferred_v<R>, deferred_value<R>, std::type_identity<R>>::type;

}  // namespace detail

/// Blocks the calling tasklet until `d` fires, then returns its value or throws its failure's
/// original exception. The reactor and other tasklets run meanwhile.
///
/// - Already fired: returns (or throws) at once, with no tasklet switch.
/// - The waiter resumes as soon as the chain reaches it, before the firing tasklet's
///   callback() returns; the firing tasklet goes to the back of the run queue.
/// - Consumes `d`: the result moves to the caller. A second block_on on the same chain, or a
///   callback added afterwards, throws std::logic_error.
/// - Killing the waiter raises tasklet_exit here and cancels `d` (the resulting
///   cancelled_error is not reported). A firing tasklet never blocks because its waiter died.
/// - From the main tasklet outside reactor::run(), drives the scheduler and the thread's
///   reactor until `d` fires.
///
/// Errors: reactor_blocked_error in the reactor tasklet (nothing is attached to `d`);
/// deadlock_error if nothing can ever fire `d` (in the main tasklet outside reactor::run(),
/// also when a tasklet stops the reactor first); std::logic_error if `d` is consumed, handed
/// over, or running a callback in this very tasklet (it would wait on itself). Leaving by an
/// exception cancels `d`; a canceller that throws then is reported as an unhandled error.
template <class T>
T block_on(deferred<T> d) {
  const detail::block_context ctx = detail::prepare_block("block_on");
  if (d.has_result()) {
    std::optional<outcome<T>> result;
    d.consume([&result](outcome<T>&& o) { result.emplace(std::move(o)); });
    return detail::take_result<T>(result);
  }
  if (d.chain_running_here())
    throw std::logic_error("block_on: the deferred is running a callback in this tasklet; it would wait on itself");
  detail::block_waiter<T> waiter;
  d.consume(detail::waiter_link<T>(waiter));
  try {
    if (!waiter.result) {
      if (ctx.drive) {
        detail::drive_reactor_until(*ctx.drive, [&waiter] { return waiter.result.has_value(); });
      } else {
        waiter.blocked = ctx.self;
        detail::block_current(waiter);
      }
    }
  } catch (...) {
    waiter.blocked = nullptr;
    if (detail::waiter_link<T>* link = std::exchange(waiter.link, nullptr)) {
      // We leave before the result came: what we waited on is no longer wanted.
      link->detach();
      // What made us leave (usually a kill) must reach the caller; a canceller that throws
      // must not replace it. A second kill delivered meanwhile still passes.
      try {
        d.cancel();
      } catch (const tasklet_exit&) {
        throw;
      } catch (...) {
        report_unhandled_error(failure(std::current_exception()));
      }
    }
    throw;
  }
  return detail::take_result<T>(waiter.result);
}

/// Wraps `fn` so that each call `(args...)` starts a new tasklet running `fn(args...)` (the
/// arguments are copied into it) and returns a deferred of its result: fn's value, or what
/// the deferred fn returns fires with. The tasklet starts at once with run() semantics: if
/// `fn` never blocks, the deferred has fired when the call returns.
///
/// `fn` is moved (or copied) once into a shared object: every call's tasklet, and every copy
/// of the returned callable, uses that same function object, as every call of a Python
/// function uses the same function. So `fn` may be move-only (a lambda owning a
/// std::unique_ptr), a large functor is never copied per call, and state that `fn` changes
/// (a mutable lambda's captures) is seen by the calls that follow, including calls whose
/// tasklets run interleaved with it.
///
/// - An exception from `fn` errbacks the deferred; exceptions never escape the tasklet.
/// - If the tasklet is killed (tasklet_exit escapes `fn`), the deferred errbacks
///   tasklet_killed_error, which is never reported as unhandled.
/// - cancel() on the deferred kills the tasklet (or cancels the deferred `fn` returned).
template <class F>
auto deferred_tasklet(F&& fn);
/// deferred_tasklet() whose tasklets are created with `opts` (a name for introspection, a
/// stack size).
template <class F>
auto deferred_tasklet(F&& fn, tasklet_options opts);

/// Wraps `fn` so that each call `(args...)` runs it in a new tasklet and blocks the caller
/// until it returns: `block_on(deferred_tasklet(fn)(args...))`. If `fn` does not block, the
/// call returns without a switch. Every call uses the same `fn` object, as in
/// deferred_tasklet().
/// Errors: reactor_blocked_error in the reactor tasklet, before `fn` starts; whatever `fn`
/// throws; tasklet_killed_error if the new tasklet is killed.
template <class F>
auto blocking_tasklet(F&& fn);
/// blocking_tasklet() whose tasklets are created with `opts`.
template <class F>
auto blocking_tasklet(F&& fn, tasklet_options opts);

/// Blocks the current tasklet for `d` on this thread's reactor (in the main tasklet outside
/// reactor::run(), runs the reactor meanwhile).
/// Errors: reactor_blocked_error in the reactor tasklet; std::logic_error if this thread has
/// no reactor; tasklet_exit if killed meanwhile (the timer is cancelled).
void sleep(duration d);

/// Blocks the current tasklet until `clock` has moved on by `d` (a manual_clock in tests, or
/// any reactor). Listings (debug.hpp) show the sleeper with its due time. Errors as for
/// sleep(duration), except that no reactor is needed when something else advances `clock`.
void sleep(reactor_time& clock, duration d);

// ---- implementation ------------------------------------------------------------------------

namespace detail {

template <class R, class Fn, class Args>
deferred<R> start_deferred_tasklet(std::shared_ptr<Fn> fn, Args args, tasklet_options opts) {
  using raw = decltype(std::apply(*fn, args));
  // Shared between the canceller and the tasklet: the tasklet to kill, or once fn has
  // returned a deferred, that deferred to cancel instead.
  struct control {
    tasklet task;
    std::optional<deferred<R>> inner;
  };
  auto ctl = std::make_shared<control>();
  deferred<R> d([ctl](deferred<R>&) {
    if (ctl->task.alive()) {
      ctl->task.kill();
    } else if (ctl->inner) {
      deferred<R> inner = *ctl->inner;
      inner.cancel();
    }
  });
  ctl->task = tasklet(
      [d, fn = std::move(fn), args = std::move(args), weak = std::weak_ptr<control>(ctl)]() mutable {
        try {
          if constexpr (is_deferred_v<raw>) {
            deferred<R> inner = std::apply(*fn, args);
            if (auto c = weak.lock()) c->inner = inner;
            inner.consume([d](outcome<R>&& o) mutable {
              if (!o.has_value())
                d.errback(o.error());
              else if constexpr (std::is_void_v<R>)
                d.callback();
              else
                d.callback(std::move(o).value());
            });
          } else if constexpr (std::is_void_v<R>) {
            std::apply(*fn, args);
            d.callback();
          } else {
            d.callback(std::apply(*fn, args));
          }
        } catch (const tasklet_exit&) {
          if (!d.called()) d.errback(failure::make(tasklet_killed_error("the tasklet computing this deferred was killed")));
          throw;
        } catch (...) {
          if (!d.called()) d.errback(std::current_exception());
        }
      },
      std::move(opts));
  tasklet t = ctl->task;
  t.run();
  return d;
}

}  // namespace detail

template <class F>
auto deferred_tasklet(F&& fn, tasklet_options opts) {
  using G = std::decay_t<F>;
  return [fn = std::make_shared<G>(std::forward<F>(fn)), opts = std::move(opts)](auto&&... args) {
    using raw = std::invoke_result_t<G&, std::decay_t<decltype(args)>&...>;
    using R = detail::tasklet_result_t<raw>;
    return detail::start_deferred_tasklet<R>(fn, std::make_tuple(std::forward<decltype(args)>(args)...), opts);
  };
}

template <class F>
auto deferred_tasklet(F&& fn) {
  return deferred_tasklet(std::forward<F>(fn), tasklet_options{});
}

template <class F>
auto blocking_tasklet(F&& fn, tasklet_options opts) {
  return [start = deferred_tasklet(std::forward<F>(fn), std::move(opts))](auto&&... args) {
    detail::check_may_block("blocking_tasklet");
    return block_on(start(std::forward<decltype(args)>(args)...));
  };
}

}  // namespace twistlet

namespace twistlet {
template <class F>
auto blocking_tasklet(F&& fn) {
  return blocking_tasklet(std::forward<F>(fn), tasklet_options{});
}
}  // namespace twistlet
