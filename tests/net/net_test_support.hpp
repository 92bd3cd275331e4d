// Helpers for the net tests: a reactor running a test body in a tasklet, loopback endpoints,
// a capture of unhandled errors, and bounded waits (mechanisms, never timing assertions).
#pragma once

#include <twistlet/bridge.hpp>
#include <twistlet/channel.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <chrono>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace net_test {

using namespace twistlet;
using namespace std::chrono_literals;

inline net::tcp_endpoint loopback(std::uint16_t port = 0) {
  return net::tcp_endpoint(asio::ip::address_v4::loopback(), port);
}

inline net::tcp_endpoint loopback6(std::uint16_t port = 0) {
  return net::tcp_endpoint(asio::ip::address_v6::loopback(), port);
}

/// Whether ::1 can be bound here (containers without IPv6 cannot).
inline bool ipv6_loopback_available() {
  asio::io_context ctx;
  asio::ip::tcp::acceptor a(ctx);
  std::error_code ec;
  a.open(asio::ip::tcp::v6(), ec);
  if (!ec) a.bind(loopback6(0), ec);
  return !ec;
}

/// Runs `body(r)` in a tasklet while the reactor runs; rethrows what it throws.
template <class F>
void run_reactor(F&& body) {
  reactor r;
  std::exception_ptr error;
  tasklet::spawn(
      [&] {
        try {
          body(r);
        } catch (...) {
          error = std::current_exception();
        }
        r.stop();
      },
      {.name = "test body"});
  r.run();
  if (error) std::rethrow_exception(error);
}

/// Sleeps in small steps until `done()`; a guard against hanging, not a timing assertion.
template <class P>
void wait_until(P done, const char* what = "condition") {
  for (int i = 0; i < 10000; ++i) {
    if (done()) return;
    sleep(1ms);
  }
  throw std::runtime_error(std::string("wait_until: gave up waiting for ") + what);
}

/// Collects what reaches the unhandled-error handler while it lives.
class error_capture {
 public:
  error_capture() {
    old_ = set_unhandled_error_handler([this](const failure& f) { failures.push_back(f); });
  }
  ~error_capture() { set_unhandled_error_handler(old_); }
  error_capture(const error_capture&) = delete;
  error_capture& operator=(const error_capture&) = delete;

  template <class E>
  std::size_t count() const {
    std::size_t n = 0;
    for (const auto& f : failures) n += f.check<E>() ? 1 : 0;
    return n;
  }

  std::vector<failure> failures;

 private:
  unhandled_error_handler old_;
};

/// Echoes until the end of the stream, then half-closes.
inline void echo_handler(net::stream s) {
  char buffer[16384];
  for (;;) {
    std::size_t n = 0;
    try {
      n = s.read_some(asio::buffer(buffer));
    } catch (const net::end_of_stream&) {
      s.shutdown_write();
      return;
    }
    s.write(asio::buffer(buffer, n));
  }
}

/// Bytes that differ at every position within a period of 251 (a prime), so that a lost,
/// duplicated or reordered chunk shows.
inline std::string pattern(std::size_t size, std::size_t offset = 0) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i + offset) % 251);
  return s;
}

/// Raises the soft limit on open files to at least `want` if the hard limit allows; returns
/// the soft limit in force.
inline rlim_t ensure_open_files(rlim_t want) {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < want && lim.rlim_max > lim.rlim_cur) {
    lim.rlim_cur = std::min(want, lim.rlim_max);
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  return lim.rlim_cur;
}

}  // namespace net_test
