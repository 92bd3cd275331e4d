// Name resolution and outgoing connections, as deferreds fired from Asio completion handlers
// in the reactor tasklet; the blocking forms are block_on() of them.
#include "net/net_detail.hpp"

#include <asio/connect.hpp>
#include <asio/error.hpp>

namespace twistlet::net {
namespace detail {

namespace {

/// One resolution or connection attempt. Completion handlers own it; the deferred's canceller
/// only observes it, so an abandoned attempt goes away with its last handler.
template <class T>
class attempt : public io_object, public std::enable_shared_from_this<attempt<T>> {
 public:
  explicit attempt(reactor& r) : r_(r) {}

  /// A deferred whose cancel() aborts the Asio operations.
  deferred<T> make_deferred() {
    deferred<T> d([w = std::weak_ptr<attempt>(this->shared_from_this())](deferred<T>&) {
      if (auto self = w.lock()) self->abort();
    });
    d_ = d;
    return d;
  }

  void on_shutdown() noexcept override {
    finished_ = true;
    resolver_.reset();
    socket_.reset();
  }

 protected:
  void abort() noexcept {
    finished_ = true;
    std::error_code ignored;
    if (resolver_) resolver_->cancel();
    if (socket_) socket_->close(ignored);
  }
  /// Fires the deferred once; later completions (after a cancel) are ignored.
  template <class F>
  void finish(F&& fire) {
    if (finished_) return;
    finished_ = true;
    deferred<T> d = std::move(d_);
    fire(d);
  }
  void fail(fault f, const char* op, const std::error_code& ec) {
    finish([&](deferred<T>& d) { d.errback(make_failure(f, op, ec)); });
  }

  reactor& r_;
  deferred<T> d_;
  bool finished_ = false;
  std::optional<asio::ip::tcp::resolver> resolver_;
  std::optional<asio::ip::tcp::socket> socket_;
};

class resolve_attempt final : public attempt<std::vector<tcp_endpoint>> {
 public:
  using attempt::attempt;
  void start(const std::string& host, std::uint16_t port) {
    resolver_.emplace(r_.context());
    enlist(r_.context());
    resolver_->async_resolve(host, std::to_string(port), asio::ip::resolver_base::numeric_service,
                             [self = shared_from_this()](const std::error_code& ec,
                                                         const asio::ip::tcp::resolver::results_type& results) {
                               static_cast<resolve_attempt&>(*self).done(ec, results);
                             });
  }

 private:
  void done(const std::error_code& ec, const asio::ip::tcp::resolver::results_type& results) {
    if (ec) {
      fail(ec == asio::error::operation_aborted ? fault::other : fault::resolve, "resolve_tcp", ec);
      return;
    }
    std::vector<tcp_endpoint> endpoints;
    endpoints.reserve(results.size());
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
    if (endpoints.empty()) {
      fail(fault::resolve, "resolve_tcp", asio::error::host_not_found);
      return;
    }
    finish([&](deferred<std::vector<tcp_endpoint>>& d) { d.callback(std::move(endpoints)); });
  }
};

class connect_attempt final : public attempt<stream> {
 public:
  connect_attempt(reactor& r, connect_options opts) : attempt(r), opts_(opts) {}
  void start(std::vector<tcp_endpoint> endpoints) {
    endpoints_ = std::move(endpoints);
    socket_.emplace(r_.context());
    enlist(r_.context());
    asio::async_connect(*socket_, endpoints_,
                        [self = shared_from_this()](const std::error_code& ec, const tcp_endpoint&) {
                          static_cast<connect_attempt&>(*self).done(ec);
                        });
  }

 private:
  void done(const std::error_code& ec) {
    if (finished_) return;
    if (ec) {
      fail(classify(ec), "connect_tcp", ec);
      return;
    }
    finish([&](deferred<stream>& d) {
      std::optional<stream> s;
      try {
        s.emplace(r_, std::move(*socket_), opts_);
      } catch (...) {
        d.errback(std::current_exception());
        return;
      }
      d.callback(std::move(*s));
    });
  }

  connect_options opts_;
  std::vector<tcp_endpoint> endpoints_;
};

deferred<stream> connect_endpoints(reactor& r, std::vector<tcp_endpoint> endpoints, connect_options opts) {
  auto a = std::make_shared<connect_attempt>(r, opts);
  deferred<stream> d = a->make_deferred();
  a->start(std::move(endpoints));
  return d;
}

}  // namespace
}  // namespace detail

deferred<std::vector<tcp_endpoint>> resolve_tcp(reactor& r, std::string host, std::uint16_t port) {
  std::error_code ec;
  const asio::ip::address numeric = asio::ip::make_address(host, ec);
  if (!ec) return succeed(std::vector<tcp_endpoint>{tcp_endpoint(numeric, port)});
  auto a = std::make_shared<detail::resolve_attempt>(r);
  deferred<std::vector<tcp_endpoint>> d = a->make_deferred();
  a->start(host, port);
  return d;
}

deferred<stream> connect_tcp(reactor& r, std::string host, std::uint16_t port, connect_options opts) {
  return resolve_tcp(r, std::move(host), port).add_callback([&r, opts](std::vector<tcp_endpoint> endpoints) {
    return detail::connect_endpoints(r, std::move(endpoints), opts);
  });
}

deferred<stream> connect_tcp(reactor& r, tcp_endpoint remote, connect_options opts) {
  return detail::connect_endpoints(r, std::vector<tcp_endpoint>{remote}, opts);
}

stream connect(reactor& r, const std::string& host, std::uint16_t port, connect_options opts) {
  return block_on(connect_tcp(r, host, port, opts));
}

stream connect(reactor& r, const tcp_endpoint& remote, connect_options opts) {
  return block_on(connect_tcp(r, remote, opts));
}

}  // namespace twistlet::net
