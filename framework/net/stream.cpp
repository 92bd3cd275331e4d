// TCP streams in blocking style.
//
// How a read waits: read_some() and read_exactly() hand the caller's own buffer to Asio's
// async_read_some (a "transfer": no copy, no buffer of ours, and the same system calls as a
// plain Asio callback server), then block; the completion handler runs in the reactor tasklet
// and switches straight back to the reader. read_line() reads into the stream's buffer, and
// waits for readiness (async_wait) before it allocates one, so an idle line reader holds no
// buffer.
//
// How a kill is survived without losing data: a killed transfer read cannot be recalled from
// the kernel, which may already have copied bytes into the reader's buffer while the
// completion waits in Asio's queue. So the reader, while unwinding, copies its buffer aside
// (rescue_), and the completion, when it comes, appends whatever the kernel delivered to the
// stream's buffer. The next reader first waits for that completion (settle_reads()), so bytes
// never overtake each other.
#include "net/net_detail.hpp"

#include <asio/error.hpp>
#include <asio/write.hpp>

namespace twistlet::net {
namespace detail {

namespace {
bool would_block(const std::error_code& ec) noexcept {
  return ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::interrupted;
}

/// Marks a direction closed, keeping an idle timeout as the reason once it is one.
void mark_closed(sticky& s) noexcept {
  if (s.f != fault::idle && s.f != fault::closed) s.set(fault::closed, asio::error::bad_descriptor);
}
}  // namespace

/// The completion handler of a read (transfer or readiness wait): holds the stream and names
/// the operation's generation; carries the read operation's cancellation slot.
struct stream_impl::read_handler {
  stream_impl* s;
  std::uint32_t gen;
  read_handler(stream_impl* impl, std::uint32_t g) noexcept : s(impl), gen(g) { s->add_ref(); }
  read_handler(read_handler&& o) noexcept : s(std::exchange(o.s, nullptr)), gen(o.gen) {}
  read_handler(const read_handler&) = delete;
  ~read_handler() {
    if (s) s->release();
  }
  void operator()(const std::error_code& ec, std::size_t n) { s->on_read(gen, ec, n); }
  void operator()(const std::error_code& ec) { s->on_read(gen, ec, 0); }
  using cancellation_slot_type = asio::cancellation_slot;
  cancellation_slot_type get_cancellation_slot() const noexcept { return s->read_op_.signal.slot(); }
};

struct stream_impl::write_handler {
  stream_impl* s;
  std::uint32_t gen;
  write_handler(stream_impl* impl, std::uint32_t g) noexcept : s(impl), gen(g) { s->add_ref(); }
  write_handler(write_handler&& o) noexcept : s(std::exchange(o.s, nullptr)), gen(o.gen) {}
  write_handler(const write_handler&) = delete;
  ~write_handler() {
    if (s) s->release();
  }
  void operator()(const std::error_code& ec, std::size_t n) { s->on_write(gen, ec, n); }
  using cancellation_slot_type = asio::cancellation_slot;
  cancellation_slot_type get_cancellation_slot() const noexcept { return s->write_op_.signal.slot(); }
};

stream_impl::stream_impl(reactor& r, asio::ip::tcp::socket&& s, const connect_options& opts)
    : r_(r), owner_(twistlet::detail::owner_token()) {
  std::error_code ec;
  sock_.emplace(std::move(s));
  if (!sock_->is_open()) throw_fault(fault::closed, "net::stream", asio::error::bad_descriptor);
  remote_ = sock_->remote_endpoint(ec);
  if (!ec) local_ = sock_->local_endpoint(ec);
  if (!ec) sock_->non_blocking(true, ec);
  if (!ec && opts.no_delay) sock_->set_option(asio::ip::tcp::no_delay(true), ec);
  if (ec) throw_error("net::stream", ec);
  enlist(r.context());
  if (opts.idle_timeout > duration::zero()) set_idle_timeout(opts.idle_timeout);
}

stream_impl::~stream_impl() { close(); }

asio::ip::tcp::socket& stream_impl::socket() {
  if (!sock_ || !sock_->is_open()) {
    if (read_fail_.f == fault::idle) read_fail_.raise("net::stream::socket");
    throw_fault(fault::closed, "net::stream::socket", asio::error::bad_descriptor);
  }
  return *sock_;
}

asio::ip::tcp::socket stream_impl::release_socket() {
  asio::ip::tcp::socket s(std::move(socket()));
  close();
  return s;
}

void stream_impl::enter(const char* op) {
  check_thread();
  // After the reactor's destruction r_ is gone too: nothing may touch it.
  if (!sock_) throw_fault(fault::closed, op, asio::error::bad_descriptor);
  check_may_block(r_, op);
}

void stream_impl::on_shutdown() noexcept {
  // The reactor is going away: Asio's cancellation handlers point into services about to
  // die, and the socket must go while its service still exists.
  read_op_.forget_slot();
  write_op_.forget_slot();
  mark_closed(read_fail_);
  mark_closed(write_fail_);
  idle_.stop();
  buf_.clear();
  sock_.reset();
}

void stream_impl::close() noexcept {
  mark_closed(read_fail_);
  mark_closed(write_fail_);
  idle_.stop();
  buf_.clear();
  scanned_ = 0;
  if (sock_ && sock_->is_open()) {
    std::error_code ignored;
    sock_->close(ignored);  // pending operations complete with operation_aborted
  }
}

void stream_impl::expire_idle() {
  if (read_fail_.f != fault::closed) read_fail_.set(fault::idle, asio::error::timed_out);
  if (write_fail_.f != fault::closed) write_fail_.set(fault::idle, asio::error::timed_out);
  close();
}

void stream_impl::set_idle_timeout(duration timeout) {
  check_thread();
  if (!is_open()) return;  // also after the reactor's destruction
  idle_.start(r_, timeout, [this] { expire_idle(); });
}

void stream_impl::closed_error(const char* op) {
  mark_closed(read_fail_);
  read_fail_.raise(op);
}

void stream_impl::read_failed(const std::error_code& ec, const char* op) {
  if (ec == asio::error::operation_aborted || !sock_ || !sock_->is_open()) {
    // Our own close (or idle timeout) aborted the operation: report why.
    closed_error(op);
  }
  const fault f = classify(ec);
  read_fail_.set(f, ec);
  throw_fault(f, op, ec);
}

// ---- reading ---------------------------------------------------------------------------------

void stream_impl::on_read(std::uint32_t gen, const std::error_code& ec, std::size_t n) {
  io_op& op = read_op_;
  if (!op.current(gen)) return;
  if (n) idle_.note_activity();
  if (op.st == io_op::state::pending) {
    op.complete(ec, n);
    return;
  }
  if (op.st != io_op::state::orphaned) return;
  // The reader was killed; whatever the kernel gave it is at read_target_ (its buffer, or the
  // copy it left in rescue_) and belongs at the end of the stream's buffer, which was empty
  // when the read started and has only gained bytes that came earlier since.
  if (!ec) {
    if (n && is_open()) buf_.append(read_target_, n);
  } else if (ec != asio::error::operation_aborted) {
    read_fail_.set(classify(ec), ec);
  }
  rescue_.reset();
  read_target_ = nullptr;
  op.settle();
}

void stream_impl::settle_reads() {
  while (read_op_.st == io_op::state::orphaned)
    park(r_, read_op_, read_op_.waiter, [this] { return read_op_.st != io_op::state::orphaned; });
}

std::size_t stream_impl::read_into(char* p, std::size_t len, const char* op) {
  if (speculate_) {
    std::error_code ec;
    const std::size_t n = sock_->read_some(asio::buffer(p, len), ec);
    if (!ec) {
      idle_.note_activity();
      speculate_ = n == len;
      return n;
    }
    if (!would_block(ec)) read_failed(ec, op);
    speculate_ = false;
  }
  const std::uint32_t gen = read_op_.begin(true);
  read_target_ = p;
  sock_->async_read_some(asio::buffer(p, len), read_handler(this, gen));
  try {
    park(r_, read_op_, read_op_.waiter, [this] { return read_op_.st != io_op::state::pending; });
  } catch (...) {
    if (read_op_.st == io_op::state::orphaned) {
      // The completion is still to come and may report bytes already in `p`, which is about
      // to go away: keep a copy for it.
      rescue_.reset(new char[len]);
      std::memcpy(rescue_.get(), p, len);
      read_target_ = rescue_.get();
    } else if (read_op_.st == io_op::state::done) {
      // Completed in the same step that threw (main driving the reactor): keep the bytes.
      if (!read_op_.ec && read_op_.n && is_open()) buf_.append(p, read_op_.n);
      read_op_.st = io_op::state::idle;
    }
    throw;
  }
  read_op_.st = io_op::state::idle;
  read_target_ = nullptr;
  if (read_op_.ec) read_failed(read_op_.ec, op);
  speculate_ = read_op_.n == len;
  return read_op_.n;
}

void stream_impl::wait_readable(const char* op) {
  const std::uint32_t gen = read_op_.begin(false);
  sock_->async_wait(asio::socket_base::wait_read, read_handler(this, gen));
  park(r_, read_op_, read_op_.waiter, [this] { return read_op_.st != io_op::state::pending; });
  read_op_.st = io_op::state::idle;
  if (read_op_.ec) read_failed(read_op_.ec, op);
}

void stream_impl::fill(const char* op) {
  for (;;) {
    if (speculate_) {
      char* dst = buf_.prepare(2048);
      const std::size_t room = buf_.room();
      std::error_code ec;
      const std::size_t n = sock_->read_some(asio::buffer(dst, room), ec);
      if (!ec) {
        buf_.commit(n);
        idle_.note_activity();
        speculate_ = n == room;
        return;
      }
      if (!would_block(ec)) read_failed(ec, op);
      speculate_ = false;
    }
    buf_.trim();
    wait_readable(op);
    speculate_ = true;
  }
}

std::size_t stream_impl::read_some(char* p, std::size_t len) {
  enter("net::stream::read_some");
  if (len == 0) return 0;
  side_guard guard(read_lock_, r_);
  settle_reads();
  if (!is_open()) closed_error("read_some");
  if (!buf_.empty()) {
    const std::size_t k = buf_.take(p, len);
    scanned_ = scanned_ > k ? scanned_ - k : 0;
    return k;
  }
  if (read_fail_) read_fail_.raise("read_some");
  return read_into(p, len, "read_some");
}

void stream_impl::read_exactly(char* p, std::size_t len) {
  enter("net::stream::read_exactly");
  if (len == 0) return;
  side_guard guard(read_lock_, r_);
  settle_reads();
  if (!is_open()) closed_error("read_exactly");
  std::size_t got = buf_.take(p, len);
  scanned_ = scanned_ > got ? scanned_ - got : 0;
  try {
    while (got < len) {
      if (read_fail_) read_fail_.raise("read_exactly");
      got += read_into(p + got, len - got, "read_exactly");
    }
  } catch (...) {
    // All or nothing: the bytes taken go back in front; an orphaned read's bytes, which come
    // later in the stream, are appended behind them when it completes.
    if (got && is_open()) {
      buf_.prepend(p, got);
      scanned_ = 0;
    }
    throw;
  }
}

std::string stream_impl::read_line(std::size_t max_length) {
  enter("net::stream::read_line");
  side_guard guard(read_lock_, r_);
  settle_reads();
  if (!is_open()) closed_error("read_line");
  for (;;) {
    const std::size_t avail = buf_.size();
    const char* d = buf_.data();
    if (scanned_ < avail) {
      if (const void* nl = std::memchr(d + scanned_, '\n', avail - scanned_)) {
        const std::size_t end = static_cast<std::size_t>(static_cast<const char*>(nl) - d);
        std::size_t len = end;
        if (len && d[len - 1] == '\r') --len;
        if (len > max_length) throw_fault(fault::too_long, "read_line", asio::error::message_size);
        std::string line(d, len);
        buf_.consume(end + 1);
        scanned_ = 0;
        return line;
      }
      scanned_ = avail;
    }
    // Up to max_length bytes and a "\r" may still become a line.
    if (avail > max_length && (avail - max_length > 1 || d[max_length] != '\r'))
      throw_fault(fault::too_long, "read_line", asio::error::message_size);
    if (read_fail_) read_fail_.raise("read_line");
    fill("read_line");
  }
}

// ---- writing ---------------------------------------------------------------------------------

void stream_impl::on_write(std::uint32_t gen, const std::error_code& ec, std::size_t n) {
  io_op& op = write_op_;
  if (!op.current(gen)) return;
  if (op.st == io_op::state::pending) {
    op.complete(ec, n);
    return;
  }
  if (op.st != io_op::state::orphaned) return;
  // The writer was killed. A write that sent part of its data has cut a message short.
  if (ec && ec != asio::error::operation_aborted) {
    write_fail_.set(classify(ec), ec);
  } else if (ec && write_sent_ + n > 0 && !write_fail_) {
    write_fail_.set(fault::other, asio::error::operation_aborted);
  }
  op.settle();
}

void stream_impl::settle_writes() {
  while (write_op_.st == io_op::state::orphaned)
    park(r_, write_op_, write_op_.waiter, [this] { return write_op_.st != io_op::state::orphaned; });
}

void stream_impl::write(const char* p, std::size_t len) {
  enter("net::stream::write");
  side_guard guard(write_lock_, r_);
  settle_writes();
  if (write_fail_) write_fail_.raise("write");
  if (write_shut_) throw_fault(fault::other, "write", asio::error::shut_down);
  std::size_t sent = 0;
  while (sent < len) {
    std::error_code ec;
    const std::size_t n = sock_->write_some(asio::buffer(p + sent, len - sent), ec);
    if (ec) {
      if (would_block(ec)) break;
      const fault f = classify(ec);
      write_fail_.set(f, ec);
      throw_fault(f, "write", ec);
    }
    sent += n;
  }
  if (sent == len) return;
  write_sent_ = sent;
  const std::uint32_t gen = write_op_.begin(true);
  asio::async_write(*sock_, asio::buffer(p + sent, len - sent), write_handler(this, gen));
  park(r_, write_op_, write_op_.waiter, [this] { return write_op_.st != io_op::state::pending; });
  write_op_.st = io_op::state::idle;
  if (const std::error_code ec = write_op_.ec) {
    if (ec == asio::error::operation_aborted || !sock_ || !sock_->is_open()) {
      mark_closed(write_fail_);
      write_fail_.raise("write");
    }
    const fault f = classify(ec);
    write_fail_.set(f, ec);
    throw_fault(f, "write", ec);
  }
}

void stream_impl::shutdown_write() {
  enter("net::stream::shutdown_write");
  side_guard guard(write_lock_, r_);
  settle_writes();
  if (write_fail_) write_fail_.raise("shutdown_write");
  if (write_shut_) return;
  std::error_code ec;
  sock_->shutdown(asio::socket_base::shutdown_send, ec);
  if (ec) {
    const fault f = ec == asio::error::not_connected ? fault::reset : classify(ec);
    write_fail_.set(f, ec);
    throw_fault(f, "shutdown_write", ec);
  }
  write_shut_ = true;
}

}  // namespace detail

// ---- the handle ------------------------------------------------------------------------------

stream::stream(reactor& r, asio::ip::tcp::socket socket, connect_options opts)
    : impl_(new detail::stream_impl(r, std::move(socket), opts)) {
  impl_->add_handle();
  impl_->release();  // the construction reference; the handle holds its own
}

stream::stream(const stream& other) noexcept : impl_(other.impl_) {
  if (impl_) impl_->add_handle();
}

stream::~stream() {
  if (impl_) impl_->drop_handle();
}

stream stream::from_impl(detail::stream_impl* impl) noexcept {
  stream s;
  s.impl_ = impl;
  if (impl) impl->add_handle();
  return s;
}

detail::stream_impl& stream::checked() const {
  if (!impl_) throw std::logic_error("net::stream: empty handle");
  return *impl_;
}

std::size_t stream::read_some(asio::mutable_buffer buffer) {
  return checked().read_some(static_cast<char*>(buffer.data()), buffer.size());
}

void stream::read_exactly(asio::mutable_buffer buffer) {
  checked().read_exactly(static_cast<char*>(buffer.data()), buffer.size());
}

std::string stream::read_line(std::size_t max_length) { return checked().read_line(max_length); }

void stream::write(asio::const_buffer data) { checked().write(static_cast<const char*>(data.data()), data.size()); }

void stream::shutdown_write() { checked().shutdown_write(); }

void stream::close() noexcept {
  if (impl_) impl_->close();
}

deferred<std::string> stream::async_read_some(std::size_t max_size) {
  checked();
  return deferred_tasklet(
      [s = *this, max_size]() mutable {
        std::string data(max_size, '\0');
        data.resize(s.read_some(asio::buffer(data)));
        return data;
      },
      {.name = "net::stream::async_read_some"})();
}

deferred<std::string> stream::async_read_exactly(std::size_t size) {
  checked();
  return deferred_tasklet(
      [s = *this, size]() mutable {
        std::string data(size, '\0');
        s.read_exactly(asio::buffer(data));
        return data;
      },
      {.name = "net::stream::async_read_exactly"})();
}

deferred<std::string> stream::async_read_line(std::size_t max_length) {
  checked();
  return deferred_tasklet([s = *this, max_length]() mutable { return s.read_line(max_length); },
                          {.name = "net::stream::async_read_line"})();
}

deferred<void> stream::async_write(std::string data) {
  checked();
  return deferred_tasklet([s = *this, data = std::move(data)]() mutable { s.write(data); },
                          {.name = "net::stream::async_write"})();
}

void stream::set_idle_timeout(duration timeout) { checked().set_idle_timeout(timeout); }

duration stream::idle_timeout() const noexcept { return impl_ ? impl_->idle_timeout() : duration::zero(); }

bool stream::is_open() const noexcept { return impl_ && impl_->is_open(); }

std::size_t stream::buffered() const noexcept { return impl_ ? impl_->buffered() : 0; }

const tcp_endpoint& stream::local_endpoint() const { return checked().local(); }

const tcp_endpoint& stream::remote_endpoint() const { return checked().remote(); }

asio::ip::tcp::socket& stream::socket() { return checked().socket(); }

reactor& stream::get_reactor() const { return checked().get_reactor(); }

}  // namespace twistlet::net
