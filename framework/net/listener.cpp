// Listening sockets: the accept loop runs on Asio callbacks in the reactor tasklet and gives
// each connection a tasklet of its own (or a protocol).
#include "net/net_detail.hpp"

#include <asio/error.hpp>
#include <asio/ip/v6_only.hpp>

#include <chrono>

namespace twistlet::net {
namespace detail {

namespace {
/// How long accepting pauses after the process ran out of descriptors or memory.
constexpr auto accept_retry_delay = std::chrono::milliseconds(100);

bool out_of_resources(const std::error_code& ec) noexcept {
  return ec == asio::error::no_descriptors || ec == std::errc::too_many_files_open_in_system ||
         ec == asio::error::no_buffer_space || ec == asio::error::no_memory;
}
}  // namespace

std::string to_string(const tcp_endpoint& ep) {
  const asio::ip::address a = ep.address();
  std::string s;
  if (a.is_v6()) s += '[';
  s += a.to_string();
  if (a.is_v6()) s += ']';
  s += ':';
  s += std::to_string(ep.port());
  return s;
}

std::string describe(const char* what, const tcp_endpoint& ep, const char* suffix) {
  std::string s(what);
  s += to_string(ep);
  s += suffix;
  return s;
}

/// The function of a connection's tasklet. It counts as a live connection of the listener
/// until it is destroyed (also when the tasklet never got to run).
struct listener_impl::connection_task {
  ref<listener_impl> l;
  stream s;

  connection_task(listener_impl* owner, stream st) noexcept : l(owner), s(std::move(st)) {}
  connection_task(connection_task&&) noexcept = default;
  ~connection_task() {
    if (l.get()) l->connection_ended();
  }

  void operator()() {
    try {
      l->handler_(s);
    } catch (const tasklet_exit&) {
      s.close();
      throw;
    } catch (const end_of_stream&) {
      s.close();
    } catch (const idle_timeout&) {
      s.close();
    } catch (...) {
      s.close();
      report_unhandled_error(failure::current());
    }
    s = stream();
  }
};

listener_impl::listener_impl(reactor& r, const tcp_endpoint& local, const listen_options& opts, bool dual_stack)
    : r_(r), opts_(opts) {
  acceptor_.emplace(r.context());
  std::error_code ec;
  acceptor_->open(local.protocol(), ec);
  if (!ec && dual_stack) acceptor_->set_option(asio::ip::v6_only(false), ec);
  if (!ec && opts.reuse_address) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(local, ec);
  if (!ec) acceptor_->listen(opts.backlog, ec);
  if (!ec) local_ = acceptor_->local_endpoint(ec);
  if (ec) throw_error(describe("listen_tcp ", local, "").c_str(), ec);
  enlist(r.context());
}

listener_impl::~listener_impl() { close(); }

void listener_impl::serve(connection_handler handler) {
  handler_ = std::move(handler);
  accept();
}

void listener_impl::serve(std::shared_ptr<protocol_factory> factory) {
  factory_ = std::move(factory);
  accept();
}

void listener_impl::accept() {
  acceptor_->async_accept([self = ref(this)](const std::error_code& ec, asio::ip::tcp::socket socket) {
    self->on_accept(ec, std::move(socket));
  });
}

void listener_impl::on_accept(const std::error_code& ec, asio::ip::tcp::socket socket) {
  if (!is_open()) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    if (out_of_resources(ec)) {
      report_unhandled_error(make_failure(fault::other, describe("listen_tcp ", local_, ": accept").c_str(), ec));
      retry_ = r_.call_later(accept_retry_delay, [self = ref(this)] {
        if (self->is_open()) self->accept();
      });
      return;
    }
    // The client gave up before it was accepted (ECONNABORTED, ...): not our problem.
    accept();
    return;
  }
  // The next accept is queued first, so a burst of clients is taken in one loop pass.
  accept();
  if (handler_)
    start_tasklet(std::move(socket));
  else
    start_protocol(std::move(socket));
}

void listener_impl::start_tasklet(asio::ip::tcp::socket socket) {
  stream s;
  try {
    s = stream(r_, std::move(socket), connect_options{opts_.no_delay, opts_.idle_timeout});
  } catch (const error&) {
    return;  // the client is already gone (no peer address any more)
  }
  std::string name = describe("tcp ", s.remote_endpoint(), "");
  ++live_;
  connection_task task(this, std::move(s));
  try {
    tasklet::spawn(std::move(task), {.name = std::move(name), .stack_size = opts_.stack_size});
  } catch (...) {
    report_unhandled_error(failure::current());
  }
}

void listener_impl::start_protocol(asio::ip::tcp::socket socket) {
  std::error_code ec;
  const tcp_endpoint remote = socket.remote_endpoint(ec);
  if (ec) return;
  std::shared_ptr<protocol> p;
  try {
    p = factory_->build_protocol(remote);
  } catch (const tasklet_exit&) {
    throw;
  } catch (...) {
    report_unhandled_error(failure::current());
    return;
  }
  if (!p) return;  // refused: the socket closes here
  protocol_conn* c = nullptr;
  try {
    c = new protocol_conn(r_, std::move(socket), opts_.no_delay, this);
  } catch (const tasklet_exit&) {
    throw;
  } catch (...) {
    return;
  }
  const ref<protocol_conn> hold(c);
  c->release();  // the construction reference; the transport and handlers hold their own
  ++live_;
  if (std::optional<failure> failed = c->start(std::move(p), opts_.idle_timeout)) report_unhandled_error(*failed);
}

void listener_impl::close() noexcept {
  if (retry_.active()) retry_.cancel();
  if (acceptor_ && acceptor_->is_open()) {
    std::error_code ignored;
    acceptor_->close(ignored);
  }
}

void listener_impl::on_shutdown() noexcept {
  if (retry_.active()) retry_.cancel();
  acceptor_.reset();
}

}  // namespace detail

// ---- the handle ------------------------------------------------------------------------------

listener& listener::operator=(listener&& other) noexcept {
  if (this != &other) {
    listener gone(std::move(*this));
    impl_ = std::exchange(other.impl_, nullptr);
  }
  return *this;
}

listener::~listener() {
  if (impl_) {
    impl_->close();
    impl_->release();
  }
}

void listener::close() noexcept {
  if (impl_) impl_->close();
}

bool listener::is_open() const noexcept { return impl_ && impl_->is_open(); }

const tcp_endpoint& listener::local_endpoint() const {
  if (!impl_) throw std::logic_error("net::listener: empty listener");
  return impl_->local();
}

std::size_t listener::connection_count() const noexcept { return impl_ ? impl_->connection_count() : 0; }

namespace {

template <class Serve>
listener make_listener(reactor& r, const tcp_endpoint& local, const listen_options& opts, bool dual_stack,
                       Serve&& serve) {
  auto* impl = new detail::listener_impl(r, local, opts, dual_stack);
  listener l(impl);
  serve(*impl);
  return l;
}

/// Every interface: IPv6 with IPv4-mapped addresses where the system has IPv6, else IPv4.
template <class Serve>
listener make_any_listener(reactor& r, std::uint16_t port, const listen_options& opts, Serve&& serve) {
  try {
    return make_listener(r, tcp_endpoint(asio::ip::tcp::v6(), port), opts, true, serve);
  } catch (const error& e) {
    if (e.code() != asio::error::address_family_not_supported && e.code() != std::errc::address_not_available)
      throw;
  }
  return make_listener(r, tcp_endpoint(asio::ip::tcp::v4(), port), opts, false, serve);
}

}  // namespace

listener listen_tcp(reactor& r, const tcp_endpoint& local, connection_handler handler, listen_options opts) {
  if (!handler) throw std::invalid_argument("listen_tcp: empty handler");
  return make_listener(r, local, opts, false, [&](detail::listener_impl& l) { l.serve(std::move(handler)); });
}

listener listen_tcp(reactor& r, std::uint16_t port, connection_handler handler, listen_options opts) {
  if (!handler) throw std::invalid_argument("listen_tcp: empty handler");
  return make_any_listener(r, port, opts, [&](detail::listener_impl& l) { l.serve(handler); });
}

listener listen_tcp(reactor& r, const tcp_endpoint& local, std::shared_ptr<protocol_factory> factory,
                    listen_options opts) {
  if (!factory) throw std::invalid_argument("listen_tcp: null protocol factory");
  return make_listener(r, local, opts, false, [&](detail::listener_impl& l) { l.serve(std::move(factory)); });
}

listener listen_tcp(reactor& r, std::uint16_t port, std::shared_ptr<protocol_factory> factory, listen_options opts) {
  if (!factory) throw std::invalid_argument("listen_tcp: null protocol factory");
  return make_any_listener(r, port, opts, [&](detail::listener_impl& l) { l.serve(factory); });
}

}  // namespace twistlet::net
