// Twisted-style protocols: the connection machinery behind a transport, and line_receiver.
#include "net/net_detail.hpp"

#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

namespace twistlet::net {
namespace detail {

namespace {

constexpr std::size_t read_chunk = 65536;
/// Reads per readiness notification before yielding to other connections.
constexpr int reads_per_wakeup = 16;

/// The reactor thread's read buffer: data_received() sees it only during the call, and reads
/// happen only in the reactor tasklet, one connection at a time.
char* shared_read_buffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[read_chunk]);
  return buffer.get();
}

bool would_block(const std::error_code& ec) noexcept {
  return ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::interrupted;
}

failure closed_failure() { return make_failure(fault::closed, "transport", asio::error::bad_descriptor); }

}  // namespace

/// A completion handler that keeps the connection alive.
struct protocol_conn::handler {
  protocol_conn* c;
  void (protocol_conn::*fn)(const std::error_code&);
  handler(protocol_conn* conn, void (protocol_conn::*f)(const std::error_code&)) noexcept : c(conn), fn(f) {
    c->add_ref();
  }
  handler(handler&& o) noexcept : c(std::exchange(o.c, nullptr)), fn(o.fn) {}
  handler(const handler&) = delete;
  ~handler() {
    if (c) c->release();
  }
  void operator()(const std::error_code& ec) { (c->*fn)(ec); }
  void operator()(const std::error_code& ec, std::size_t) { (c->*fn)(ec); }
};

protocol_conn::protocol_conn(reactor& r, asio::ip::tcp::socket&& s, bool no_delay, listener_impl* owner)
    : r_(r), owner_(owner) {
  sock_.emplace(std::move(s));
  std::error_code ec;
  remote_ = sock_->remote_endpoint(ec);
  if (!ec) local_ = sock_->local_endpoint(ec);
  if (!ec) sock_->non_blocking(true, ec);
  if (!ec && no_delay) sock_->set_option(asio::ip::tcp::no_delay(true), ec);
  if (ec) throw_error("net::transport", ec);
  enlist(r.context());
  if (owner_) owner_->add_ref();
}

protocol_conn::~protocol_conn() {
  idle_.stop();
  if (owner_) owner_->release();
}

template <class F>
bool protocol_conn::call(F&& f) {
  try {
    f();
    return true;
  } catch (const tasklet_exit&) {
    throw;  // the reactor tasklet is being killed: not the protocol's failure
  } catch (...) {
    failure reason = failure::current();
    report_unhandled_error(reason);
    finish(std::move(reason));
    return false;
  }
}

std::optional<failure> protocol_conn::start(std::shared_ptr<protocol> p, duration idle_timeout) {
  proto_ = std::move(p);
  proto_->transport_ = net::transport(this);
  if (idle_timeout > duration::zero()) set_idle_timeout(idle_timeout);
  std::optional<failure> failed;
  try {
    proto_->connection_made();
  } catch (const tasklet_exit&) {
    throw;
  } catch (...) {
    failed = failure::current();
    finish(*failed);
    return failed;
  }
  if (state_ == state::open) arm_read();
  return failed;
}

void protocol_conn::arm_read() { sock_->async_wait(asio::socket_base::wait_read, handler(this, &protocol_conn::on_readable)); }

void protocol_conn::on_readable(const std::error_code& ec) {
  if (state_ == state::closed) return;
  if (ec) {
    finish(make_failure(classify(ec), "transport", ec));
    return;
  }
  char* buffer = shared_read_buffer();
  for (int i = 0; i < reads_per_wakeup; ++i) {
    std::error_code rec;
    const std::size_t n = sock_->read_some(asio::buffer(buffer, read_chunk), rec);
    if (rec) {
      if (would_block(rec)) break;
      if (rec == asio::error::eof) {
        // The peer is done sending; what we still owe it goes out first.
        if (state_ == state::open) {
          state_ = state::closing;
          closing_reason_ = make_failure(fault::eof, "transport", rec);
        }
        if (!writing_ && out_.empty()) finish(*closing_reason_);
        return;
      }
      finish(make_failure(classify(rec), "transport", rec));
      return;
    }
    idle_.note_activity();
    // While losing the connection, input is read and dropped: closing a socket with unread
    // input would send a reset, which may destroy what we just sent before the peer reads it.
    if (state_ == state::open && !call([&] { proto_->data_received(std::string_view(buffer, n)); })) return;
    if (state_ == state::closed) return;
    if (n < read_chunk) break;
  }
  arm_read();
}

void protocol_conn::write(std::string_view data) {
  if (state_ != state::open || data.empty()) return;
  if (!writing_ && out_.empty()) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      std::error_code ec;
      const std::size_t n = sock_->write_some(asio::buffer(data.data() + sent, data.size() - sent), ec);
      if (ec) {
        if (would_block(ec)) break;
        finish(make_failure(classify(ec), "transport", ec));
        return;
      }
      sent += n;
    }
    data.remove_prefix(sent);
    if (data.empty()) return;
  }
  out_.append(data);
  if (!writing_) start_write();
}

void protocol_conn::start_write() {
  writing_ = true;
  inflight_.swap(out_);
  asio::async_write(*sock_, asio::buffer(inflight_), handler(this, &protocol_conn::on_written));
}

void protocol_conn::on_written(const std::error_code& ec) {
  writing_ = false;
  inflight_.clear();
  if (state_ == state::closed) return;
  if (ec) {
    finish(make_failure(classify(ec), "transport", ec));
    return;
  }
  if (!out_.empty()) {
    start_write();
    return;
  }
  if (state_ == state::closing) finish(*closing_reason_);
}

void protocol_conn::lose() {
  if (state_ != state::open) return;
  state_ = state::closing;
  closing_reason_ = closed_failure();
  if (!writing_ && out_.empty()) finish(*closing_reason_);
}

void protocol_conn::abort() {
  if (state_ == state::closed) return;
  finish(closed_failure());
}

void protocol_conn::set_idle_timeout(duration timeout) {
  if (state_ == state::closed) return;
  idle_.start(r_, timeout, [this] {
    finish(make_failure(fault::idle, "transport", asio::error::timed_out));
  });
}

void protocol_conn::finish(failure reason) {
  if (state_ == state::closed) return;
  state_ = state::closed;
  idle_.stop();
  out_.clear();
  if (sock_) {
    std::error_code ignored;
    sock_->close(ignored);
  }
  // connection_lost() never runs inside another callback of the protocol: it is posted.
  struct ref {
    protocol_conn* c;
    explicit ref(protocol_conn* conn) noexcept : c(conn) { c->add_ref(); }
    ref(ref&& o) noexcept : c(std::exchange(o.c, nullptr)) {}
    ref(const ref&) = delete;
    ~ref() {
      if (c) c->release();
    }
  };
  try {
    asio::post(r_.context(), [self = ref(this), reason = std::move(reason)] { self.c->deliver_lost(reason); });
  } catch (...) {
    // Out of memory: tell the protocol now rather than never.
    deliver_lost(closed_failure());
  }
}

void protocol_conn::deliver_lost(const failure& reason) noexcept {
  std::shared_ptr<protocol> p = std::move(proto_);
  if (owner_) owner_->connection_ended();
  if (!p) return;
  try {
    p->connection_lost(reason);
  } catch (...) {
    report_unhandled_error(failure::current());
  }
}

void protocol_conn::on_shutdown() noexcept {
  state_ = state::closed;
  idle_.stop();
  out_.clear();
  sock_.reset();
  // The protocol is dropped without connection_lost(): the reactor is being destroyed.
  proto_.reset();
}

}  // namespace detail

// ---- transport -------------------------------------------------------------------------------

transport::transport(detail::protocol_conn* impl) noexcept : impl_(impl) {
  if (impl_) impl_->add_ref();
}

transport::transport(const transport& other) noexcept : impl_(other.impl_) {
  if (impl_) impl_->add_ref();
}

transport::~transport() {
  if (impl_) impl_->release();
}

void transport::write(std::string_view data) {
  if (impl_) impl_->write(data);
}

void transport::lose_connection() {
  if (impl_) impl_->lose();
}

void transport::abort_connection() {
  if (impl_) impl_->abort();
}

bool transport::connected() const noexcept { return impl_ && impl_->connected(); }

std::size_t transport::pending_bytes() const noexcept { return impl_ ? impl_->pending() : 0; }

void transport::set_idle_timeout(duration timeout) {
  if (impl_) impl_->set_idle_timeout(timeout);
}

tcp_endpoint transport::local_endpoint() const { return impl_ ? impl_->local() : tcp_endpoint(); }

tcp_endpoint transport::remote_endpoint() const { return impl_ ? impl_->remote() : tcp_endpoint(); }

// ---- line_receiver ---------------------------------------------------------------------------

void line_receiver::line_length_exceeded(std::string_view) { transport().lose_connection(); }

void line_receiver::send_line(std::string_view line) {
  std::string out;
  out.reserve(line.size() + 2);
  out.append(line);
  out.append("\r\n");
  transport().write(out);
}

void line_receiver::data_received(std::string_view data) {
  buffer_.append(data);
  // Lines stop once the connection is being lost (Twisted checks transport.disconnecting).
  auto stopped = [this] { return transport() && !transport().connected(); };
  std::size_t start = 0;
  while (!stopped()) {
    const std::size_t nl = buffer_.find('\n', start);
    if (nl == std::string::npos) break;
    std::size_t len = nl - start;
    if (len && buffer_[start + len - 1] == '\r') --len;
    if (len > max_length_) {
      std::string partial = buffer_.substr(start);
      buffer_.clear();
      line_length_exceeded(partial);
      return;
    }
    // A copy: line_received() may send lines or otherwise touch this protocol.
    const std::string line = buffer_.substr(start, len);
    start = nl + 1;
    line_received(line);
  }
  buffer_.erase(0, start);
  const std::size_t held = buffer_.size();
  if (held > max_length_ && (held - max_length_ > 1 || buffer_.back() != '\r')) {
    std::string partial = std::move(buffer_);
    buffer_.clear();
    line_length_exceeded(partial);
  }
}

}  // namespace twistlet::net

namespace twistlet::net {

deferred<std::shared_ptr<protocol>> connect_tcp(reactor& r, std::string host, std::uint16_t port,
                                                std::shared_ptr<protocol_factory> factory, connect_options opts) {
  if (!factory) throw std::invalid_argument("connect_tcp: null protocol factory");
  connect_options plain = opts;
  plain.idle_timeout = duration::zero();  // the protocol connection keeps its own
  return connect_tcp(r, std::move(host), port, plain)
      .add_callback([&r, factory = std::move(factory), opts](stream s) -> std::shared_ptr<protocol> {
        std::shared_ptr<protocol> p = factory->build_protocol(s.remote_endpoint());
        if (!p) throw std::invalid_argument("connect_tcp: the protocol factory built no protocol");
        auto* c = new detail::protocol_conn(r, s.impl()->release_socket(), opts.no_delay, nullptr);
        const detail::ref<detail::protocol_conn> hold(c);
        c->release();  // the construction reference
        if (std::optional<failure> failed = c->start(p, opts.idle_timeout)) failed->raise();
        return p;
      });
}

}  // namespace twistlet::net
