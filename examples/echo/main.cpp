// An echo server and client in blocking style: each connection is a tasklet that reads and
// writes as if it owned a thread, while one reactor serves them all.
//
//   echo                              a server on 127.0.0.1 (a port the system picks) and three
//                                     clients against it; prints the transcript, exits 0
//   echo --server [PORT]              serve on every interface (default port 7007) until
//                                     interrupted (Ctrl-C)
//   echo --client PORT [HOST [MSG...]]  send each message as a line (a few defaults if none)
//                                     to HOST (default localhost) and print each echo
#include <twistlet/bridge.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

#include <asio/signal_set.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace twistlet;

namespace {

struct server_stats {
  int connections = 0;
  std::size_t bytes = 0;
};

/// One connection: echo until the client is done sending, then finish our side too.
void serve(net::stream s, server_stats& stats) {
  ++stats.connections;
  char buffer[4096];
  for (;;) {
    std::size_t n = 0;
    try {
      n = s.read_some(asio::buffer(buffer));
    } catch (const net::end_of_stream&) {
      s.shutdown_write();
      return;
    }
    s.write(asio::buffer(buffer, n));
    stats.bytes += n;
  }
}

/// Sends each message as a line and reads its echo; returns the transcript.
std::string talk(net::stream s, const std::string& who, const std::vector<std::string>& messages) {
  std::string transcript;
  for (const std::string& m : messages) {
    s.write(m + "\n");
    transcript += who + " -> " + m + "\n";
    transcript += who + " <- " + s.read_line() + "\n";
  }
  s.shutdown_write();
  try {
    s.read_line();
    transcript += who + ": unexpected data after the last echo\n";
  } catch (const net::end_of_stream&) {
    transcript += who + ": server closed its side\n";
  }
  return transcript;
}

int demo() {
  reactor r;
  server_stats stats;
  net::listener l =
      net::listen_tcp(r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0), [&](net::stream s) { serve(s, stats); });
  std::printf("echo server listening on %s:%u\n", l.local_endpoint().address().to_string().c_str(), l.port());

  const std::vector<std::vector<std::string>> scripts = {
      {"hello from client 1", "how are you?"},
      {"client 2 here", "tasklets block, threads do not", "bye"},
      {"and client 3"},
  };
  int status = 0;
  tasklet::spawn([&] {
    try {
      // The clients run concurrently, one tasklet each.
      std::vector<deferred<std::string>> clients;
      for (std::size_t i = 0; i < scripts.size(); ++i) {
        clients.push_back(deferred_tasklet([&r, &l, &scripts, i] {
          net::stream s = net::connect(r, "127.0.0.1", l.port());
          return talk(s, "client " + std::to_string(i + 1), scripts[i]);
        })());
      }
      for (const std::string& transcript : block_on(gather_results(std::move(clients))))
        std::fputs(transcript.c_str(), stdout);
      while (l.connection_count() != 0) sleep(std::chrono::milliseconds(1));
      std::printf("server: %d connections, %zu bytes echoed\n", stats.connections, stats.bytes);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "echo demo failed: %s\n", e.what());
      status = 1;
    }
    r.stop();
  });
  r.run();
  return status;
}

int server(std::uint16_t port) {
  reactor r;
  server_stats stats;
  net::listener l = net::listen_tcp(r, port, [&](net::stream s) {
    const std::string peer = s.remote_endpoint().address().to_string();
    std::printf("connection from %s\n", peer.c_str());
    std::fflush(stdout);
    serve(s, stats);
  });
  std::printf("echo server on port %u; Ctrl-C stops it\n", l.port());
  std::fflush(stdout);
  asio::signal_set signals(r.context(), SIGINT, SIGTERM);
  signals.async_wait([&](const std::error_code&, int) { r.stop(); });
  r.run();
  std::printf("served %d connections, %zu bytes\n", stats.connections, stats.bytes);
  return 0;
}

int client(const std::string& host, std::uint16_t port, std::vector<std::string> messages) {
  if (messages.empty()) messages = {"hello", "echo, echo", "goodbye"};
  reactor r;
  try {
    // The main tasklet may block too: outside reactor::run() it drives the reactor itself.
    net::stream s = net::connect(r, host, port);
    std::fputs(talk(s, "client", messages).c_str(), stdout);
    return 0;
  } catch (const net::error& e) {
    std::fprintf(stderr, "echo client: %s\n", e.what());
    return 1;
  }
}

std::uint16_t parse_port(const char* s) {
  const long v = std::strtol(s, nullptr, 10);
  if (v <= 0 || v > 65535) {
    std::fprintf(stderr, "bad port: %s\n", s);
    std::exit(2);
  }
  return static_cast<std::uint16_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 1) return demo();
  if (std::strcmp(argv[1], "--server") == 0) return server(argc > 2 ? parse_port(argv[2]) : 7007);
  if (std::strcmp(argv[1], "--client") == 0 && argc > 2) {
    const std::string host = argc > 3 ? argv[3] : "localhost";
    return client(host, parse_port(argv[2]), std::vector<std::string>(argv + std::min(argc, 4), argv + argc));
  }
  std::fprintf(stderr, "usage: %s [--server [PORT] | --client PORT [HOST [MESSAGE...]]]\n", argv[0]);
  return 2;
}
