// Twisted-style protocols: callbacks in the reactor tasklet, a transport that never blocks.
#include <twistlet/bridge.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

#include <cstdio>
#include <memory>
#include <string>

using namespace twistlet;

// [server]
// Answers each line with its length; "quit" ends the conversation.
struct counter : net::line_receiver {
  void line_received(std::string_view line) override {
    if (line == "quit") {
      send_line("bye");
      transport().lose_connection();  // after "bye" has been sent
    } else {
      send_line(std::to_string(line.size()));
    }
  }
};
// [server]

// [client]
struct asker : net::line_receiver {
  deferred<void> done;
  void connection_made() override {
    send_line("hello");
    send_line("twistlet");
    send_line("quit");
  }
  void line_received(std::string_view line) override { std::printf("answer: %.*s\n", int(line.size()), line.data()); }
  void connection_lost(const failure& reason) override {
    std::printf("lost: %s\n", reason.check<net::end_of_stream>() ? "the server closed" : reason.what().c_str());
    done.callback();
  }
};
// [client]

int main() {
  reactor r;
  // [listen]
  net::listener l = net::listen_tcp(r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0),
                                    net::make_factory<counter>());
  auto client = std::make_shared<asker>();
  net::connect_protocol(r, "127.0.0.1", l.port(), client);
  block_on(client->done);  // from main outside run(): drives the reactor until it fires
  // [listen]
}
