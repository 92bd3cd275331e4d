// UDP sockets in blocking style. Both directions wait for readiness and then move the datagram
// themselves, so a cancelled wait never consumes or half-sends one.
#include "net/net_detail.hpp"

#include <asio/error.hpp>

namespace twistlet::net {
namespace detail {

class udp_impl final : public io_object, public handle_counted<udp_impl> {
 public:
  udp_impl(reactor& r, const udp_endpoint& local) : r_(r), owner_(twistlet::detail::owner_token()) {
    sock_.emplace(r.context());
    std::error_code ec;
    sock_->open(local.protocol(), ec);
    if (!ec) sock_->bind(local, ec);
    if (!ec) sock_->non_blocking(true, ec);
    if (!ec) local_ = sock_->local_endpoint(ec);
    if (ec) throw_error(describe("net::udp_socket ", tcp_endpoint(local.address(), local.port()), "").c_str(), ec);
    enlist(r.context());
  }
  ~udp_impl() { close(); }

  std::size_t receive_from(char* p, std::size_t len, udp_endpoint& sender) {
    start("net::udp_socket::receive_from");
    side_guard guard(read_lock_, r_);
    for (;;) {
      check_open("receive_from");
      std::error_code ec;
      const std::size_t n = sock_->receive_from(asio::buffer(p, len), sender, 0, ec);
      if (!ec) return n;
      if (!would_block(ec)) throw_error("receive_from", ec);
      wait(read_op_, asio::socket_base::wait_read, "receive_from");
    }
  }

  void send_to(const char* p, std::size_t len, const udp_endpoint& to) {
    start("net::udp_socket::send_to");
    side_guard guard(write_lock_, r_);
    for (;;) {
      check_open("send_to");
      std::error_code ec;
      sock_->send_to(asio::buffer(p, len), to, 0, ec);
      if (!ec) return;
      if (!would_block(ec)) throw_error("send_to", ec);
      wait(write_op_, asio::socket_base::wait_write, "send_to");
    }
  }

  void close() noexcept {
    if (sock_ && sock_->is_open()) {
      std::error_code ignored;
      sock_->close(ignored);
    }
  }
  bool is_open() const noexcept { return sock_ && sock_->is_open(); }
  const udp_endpoint& local() const noexcept { return local_; }
  asio::ip::udp::socket& socket() {
    check_open("net::udp_socket::socket");
    return *sock_;
  }

  void on_shutdown() noexcept override {
    read_op_.forget_slot();
    write_op_.forget_slot();
    sock_.reset();
  }

 private:
  struct handler {
    ref<udp_impl> s;
    io_op* op;
    std::uint32_t gen;
    void operator()(const std::error_code& ec) {
      if (op->current(gen)) op->complete(ec, 0);
    }
    using cancellation_slot_type = asio::cancellation_slot;
    cancellation_slot_type get_cancellation_slot() const noexcept { return op->signal.slot(); }
  };

  static bool would_block(const std::error_code& ec) noexcept {
    return ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::interrupted;
  }
  void start(const char* what) {
    TWISTLET_CHECK_OWNER(owner_, "net::udp_socket");
    // After the reactor's destruction r_ is gone too: nothing may touch it.
    if (!sock_) throw_fault(fault::closed, what, asio::error::bad_descriptor);
    check_may_block(r_, what);
  }
  void check_open(const char* op) {
    if (!is_open()) throw_fault(fault::closed, op, asio::error::bad_descriptor);
  }
  void wait(io_op& op, asio::socket_base::wait_type type, const char* what) {
    const std::uint32_t gen = op.begin(false);
    sock_->async_wait(type, handler{ref(this), &op, gen});
    park(r_, op, op.waiter, [&op] { return op.st != io_op::state::pending; });
    op.st = io_op::state::idle;
    if (op.ec && op.ec != asio::error::operation_aborted) throw_error(what, op.ec);
  }

  reactor& r_;
  std::optional<asio::ip::udp::socket> sock_;
  udp_endpoint local_;
  const void* owner_;
  side_lock read_lock_{"net::udp_socket receive"};
  side_lock write_lock_{"net::udp_socket send"};
  io_op read_op_{"net::udp_socket receive"};
  io_op write_op_{"net::udp_socket send"};
};

}  // namespace detail

udp_socket::udp_socket(reactor& r, const udp_endpoint& local) : impl_(new detail::udp_impl(r, local)) {
  impl_->add_handle();
  impl_->release();
}

udp_socket::udp_socket(const udp_socket& other) noexcept : impl_(other.impl_) {
  if (impl_) impl_->add_handle();
}

udp_socket::~udp_socket() {
  if (impl_) impl_->drop_handle();
}

detail::udp_impl& udp_socket::checked() const {
  if (!impl_) throw std::logic_error("net::udp_socket: empty handle");
  return *impl_;
}

std::size_t udp_socket::receive_from(asio::mutable_buffer buffer, udp_endpoint& sender) {
  return checked().receive_from(static_cast<char*>(buffer.data()), buffer.size(), sender);
}

void udp_socket::send_to(asio::const_buffer data, const udp_endpoint& destination) {
  checked().send_to(static_cast<const char*>(data.data()), data.size(), destination);
}

deferred<datagram> udp_socket::async_receive_from(std::size_t max_size) {
  checked();
  return deferred_tasklet(
      [s = *this, max_size]() mutable {
        datagram d;
        d.data.resize(max_size);
        d.data.resize(s.receive_from(asio::buffer(d.data), d.sender));
        return d;
      },
      {.name = "net::udp_socket::async_receive_from"})();
}

deferred<void> udp_socket::async_send_to(std::string data, udp_endpoint destination) {
  checked();
  return deferred_tasklet([s = *this, data = std::move(data), destination]() mutable { s.send_to(data, destination); },
                          {.name = "net::udp_socket::async_send_to"})();
}

void udp_socket::close() noexcept {
  if (impl_) impl_->close();
}

bool udp_socket::is_open() const noexcept { return impl_ && impl_->is_open(); }

const udp_endpoint& udp_socket::local_endpoint() const { return checked().local(); }

asio::ip::udp::socket& udp_socket::socket() { return checked().socket(); }

}  // namespace twistlet::net
