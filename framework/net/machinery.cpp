// Error mapping, the registry, waits and side locks, the receive buffer, idle timers.
#include "net/net_detail.hpp"

#include <asio/error.hpp>

#include <algorithm>
#include <chrono>

namespace twistlet::net::detail {

// ---- errors --------------------------------------------------------------------------------

fault classify(const std::error_code& ec) noexcept {
  if (ec == asio::error::eof) return fault::eof;
  if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe || ec == asio::error::connection_aborted)
    return fault::reset;
  if (ec == asio::error::connection_refused) return fault::refused;
  if (ec == asio::error::bad_descriptor) return fault::closed;
  if (ec.category() == asio::error::get_netdb_category() || ec.category() == asio::error::get_addrinfo_category())
    return fault::resolve;
  return fault::other;
}

std::exception_ptr make_exception(fault f, const char* op, const std::error_code& ec) {
  // Built by appending: GCC 12 misreads the inlined `"..." + std::string&&` at -O3.
  std::string what(op);
  what += ": ";
  const auto with_reason = [&](const char* reason) {
    what += reason;
    what += " (";
    what += ec.message();
    what += ')';
    return what;
  };
  switch (f) {
    case fault::eof:
      return std::make_exception_ptr(end_of_stream(with_reason("the peer closed the connection"), ec));
    case fault::reset:
      return std::make_exception_ptr(connection_reset(what += ec.message(), ec));
    case fault::refused:
      return std::make_exception_ptr(connection_refused(what += ec.message(), ec));
    case fault::closed:
      return std::make_exception_ptr(connection_closed(with_reason("the connection is closed"), ec));
    case fault::idle:
      return std::make_exception_ptr(idle_timeout(with_reason("idle timeout: nothing was received for too long"), ec));
    case fault::too_long:
      return std::make_exception_ptr(line_too_long(with_reason("the line is longer than the limit"), ec));
    case fault::resolve:
      return std::make_exception_ptr(resolve_error(what += ec.message(), ec));
    case fault::none:
    case fault::other:
      break;
  }
  return std::make_exception_ptr(error(what += ec.message(), ec));
}

void throw_fault(fault f, const char* op, const std::error_code& ec) { std::rethrow_exception(make_exception(f, op, ec)); }

void throw_error(const char* op, const std::error_code& ec) { throw_fault(classify(ec), op, ec); }

// ---- the registry --------------------------------------------------------------------------

asio::execution_context::id registry::id;

void registry::add(io_object* o) noexcept {
  o->reg_ = this;
  o->prev_ = nullptr;
  o->next_ = head_;
  if (head_) head_->prev_ = o;
  head_ = o;
}

void registry::remove(io_object* o) noexcept {
  if (o->prev_)
    o->prev_->next_ = o->next_;
  else
    head_ = o->next_;
  if (o->next_) o->next_->prev_ = o->prev_;
  o->reg_ = nullptr;
  o->prev_ = o->next_ = nullptr;
}

void registry::shutdown() {
  // on_shutdown() may release the last reference to other objects (handlers dropped with a
  // socket); each one leaves the list before anything else can be freed.
  while (io_object* o = head_) {
    remove(o);
    o->on_shutdown();
  }
}

void io_object::enlist(asio::io_context& ctx) { asio::use_service<registry>(ctx).add(this); }

io_object::~io_object() {
  if (reg_) reg_->remove(this);
}

// ---- waiting -------------------------------------------------------------------------------

void check_may_block(reactor& r, const char* what) {
  if (r.in_reactor_tasklet()) [[unlikely]]
    throw reactor_blocked_error(std::string(what) +
                                ": called in the reactor tasklet, which must never block (nothing would be left "
                                "to wake it); use the deferred (async_) form, or call it from a tasklet");
}

void drive(reactor& r, const std::function<bool()>& done) { twistlet::detail::drive_reactor_until(r, done); }

void io_op::complete(const std::error_code& e, std::size_t bytes) {
  st = state::done;
  ec = e;
  n = bytes;
  if (tasklet_impl* w = std::exchange(waiter, nullptr)) twistlet::detail::wake_now(w);
}

void io_op::settle() {
  st = state::idle;
  if (tasklet_impl* w = std::exchange(waiter, nullptr)) twistlet::detail::wake_now(w);
}

void io_op::abandon(tasklet_impl*) noexcept {
  waiter = nullptr;
  if (st != state::pending) return;
  if (transfer_) {
    st = state::orphaned;
  } else {
    st = state::idle;
    ++gen;
  }
  signal.emit(asio::cancellation_type::terminal);
}

std::string io_op::describe() const { return std::string(what_) + " (an Asio operation)"; }

void side_lock::acquire(reactor& r) {
  if (!held_) {
    held_ = true;
    return;
  }
  node me;
  if (tail_)
    tail_->next = &me;
  else
    head_ = &me;
  tail_ = &me;
  me.linked = true;
  try {
    park(r, *this, me.t, [&me] { return me.granted; });
  } catch (...) {
    if (me.linked) unlink(&me);
    if (me.granted) release();
    throw;
  }
}

void side_lock::release() noexcept {
  if (node* n = head_) {
    unlink(n);
    n->granted = true;
    if (n->t) twistlet::detail::wake_later(n->t);
    return;
  }
  held_ = false;
}

void side_lock::unlink(node* n) noexcept {
  node* prev = nullptr;
  for (node* p = head_; p; prev = p, p = p->next) {
    if (p != n) continue;
    if (prev)
      prev->next = p->next;
    else
      head_ = p->next;
    if (tail_ == p) tail_ = prev;
    p->next = nullptr;
    p->linked = false;
    return;
  }
}

void side_lock::abandon(tasklet_impl* t) noexcept {
  for (node* p = head_; p; p = p->next)
    if (p->t == t) {
      unlink(p);
      return;
    }
}

std::string side_lock::describe() const { return std::string(what_) + " (queued behind another caller)"; }

// ---- the receive buffer --------------------------------------------------------------------

std::size_t recv_buffer::take(char* out, std::size_t len) noexcept {
  const std::size_t k = std::min(len, size());
  if (k) {
    std::memcpy(out, data(), k);
    consume(k);
  }
  return k;
}

char* recv_buffer::prepare(std::size_t want) {
  if (room() < want) {
    const std::size_t held = size();
    if (mem_ && cap_ - held >= want && cap_ - held >= cap_ / 2) {
      std::memmove(mem_.get(), data(), held);
    } else {
      const std::size_t cap = std::max({cap_ * 2, held + want, std::size_t(4096)});
      std::unique_ptr<char[]> mem(new char[cap]);
      if (held) std::memcpy(mem.get(), data(), held);
      mem_ = std::move(mem);
      cap_ = cap;
    }
    begin_ = 0;
    end_ = held;
  }
  return mem_.get() + end_;
}

void recv_buffer::prepend(const char* p, std::size_t k) {
  if (k == 0) return;
  if (begin_ >= k) {
    begin_ -= k;
    std::memcpy(mem_.get() + begin_, p, k);
    return;
  }
  const std::size_t held = size();
  const std::size_t cap = std::max({cap_, held + k, std::size_t(4096)});
  std::unique_ptr<char[]> mem(new char[cap]);
  std::memcpy(mem.get(), p, k);
  if (held) std::memcpy(mem.get() + k, data(), held);
  mem_ = std::move(mem);
  cap_ = cap;
  begin_ = 0;
  end_ = held + k;
}

// ---- idle timers ---------------------------------------------------------------------------

void idle_watch::start(reactor& r, duration timeout, std::function<void()> expire) {
  stop();
  timeout_ = timeout;
  if (timeout <= duration::zero()) {
    timeout_ = duration::zero();
    return;
  }
  clock_ = &r;
  expire_ = std::move(expire);
  last_ = r.now();
  arm(last_ + timeout_);
}

void idle_watch::stop() noexcept {
  if (call_.active()) call_.cancel();
  timeout_ = duration::zero();
}

void idle_watch::arm(time_point due) {
  call_ = clock_->call_later(std::max(due - clock_->now(), duration::zero()), [this] {
    if (timeout_ <= duration::zero()) return;
    if (clock_->now() - last_ >= timeout_) {
      timeout_ = duration::zero();
      // The function may destroy this watch's owner: run it from a local copy.
      std::function<void()> expire = std::move(expire_);
      expire();
    } else {
      arm(last_ + timeout_);
    }
  });
}

}  // namespace twistlet::net::detail
