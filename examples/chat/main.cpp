// A line-based chat server: one tasklet per client reads its lines, and one broadcaster
// tasklet, fed by a channel, keeps the member list and sends every message to everyone.
// Clients can be `nc HOST PORT`: type a line to say it, "/nick NAME" to rename, "/quit" to go.
//
//   chat PORT     serve on every interface until interrupted (Ctrl-C)
//   chat --demo   serve on 127.0.0.1 (a port the system picks), run three scripted clients,
//                 print what each of them saw, exit 0
#include <twistlet/bridge.hpp>
#include <twistlet/channel.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

#include <asio/signal_set.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace twistlet;
using namespace std::chrono_literals;

namespace {

/// What client tasklets tell the broadcaster.
struct event {
  enum kind { join, say, nick, leave, shutdown } what;
  net::stream who;
  std::string text;  // say: the message; nick: the new name; leave: non-empty after /quit
};

/// Sends without ever blocking the broadcaster: each line goes out from a tasklet of its own,
/// and lines to one client keep their order (a stream serves writers first come, first
/// served). A client that went away makes the write fail; its own tasklet reports the leave.
void send_to(net::stream s, std::string line) {
  s.async_write(std::move(line) + "\n").add_errback([](const failure&) {});
}

void broadcaster(channel<event> events) {
  struct member {
    net::stream s;
    std::string name;
  };
  std::vector<member> members;
  int guests = 0;
  auto find = [&](const net::stream& s) {
    for (auto it = members.begin(); it != members.end(); ++it)
      if (it->s == s) return it;
    return members.end();
  };
  auto to_all = [&](const std::string& line) {
    for (const member& m : members) send_to(m.s, line);
  };
  for (;;) {
    event e = events.receive();
    switch (e.what) {
      case event::shutdown:
        return;
      case event::join: {
        std::string name = "guest" + std::to_string(++guests);
        to_all("* " + name + " joined");
        members.push_back({e.who, name});
        send_to(e.who, "* welcome, you are " + name + "; /nick NAME to rename, /quit to leave");
        break;
      }
      case event::say:
        if (auto it = find(e.who); it != members.end()) to_all("<" + it->name + "> " + e.text);
        break;
      case event::nick:
        if (auto it = find(e.who); it != members.end() && !e.text.empty()) {
          to_all("* " + it->name + " is now " + e.text);
          it->name = e.text;
        }
        break;
      case event::leave:
        if (auto it = find(e.who); it != members.end()) {
          const std::string name = it->name;
          members.erase(it);
          if (!e.text.empty()) send_to(e.who, "* bye");
          to_all("* " + name + " left");
        }
        break;
    }
  }
}

/// One client's tasklet: its lines become events until it quits or goes away.
void client_session(net::stream s, channel<event> events) {
  events.send({event::join, s, {}});
  bool quit = false;
  try {
    while (!quit) {
      std::string line = s.read_line(1024);
      if (line == "/quit")
        quit = true;
      else if (line.rfind("/nick ", 0) == 0)
        events.send({event::nick, s, line.substr(6)});
      else if (!line.empty())
        events.send({event::say, s, std::move(line)});
    }
  } catch (const net::error&) {
    // Gone (end of stream, reset), or a line over the limit: either way, this client leaves.
  }
  events.send({event::leave, s, quit ? "quit" : ""});
  // Returning drops this tasklet's handle; the connection closes once "* bye" is out.
}

/// Starts the broadcaster; returns the handler that runs each client's session.
net::connection_handler start_chat(channel<event> events) {
  tasklet::spawn([events] { broadcaster(events); }, {.name = "broadcaster"});
  return [events](net::stream s) { client_session(s, events); };
}

// ---- the demo ------------------------------------------------------------------------------

/// A scripted client: everything it reads is printed under its name.
struct scripted {
  reactor& r;
  std::string name;
  net::stream s;

  /// Reads lines until `line` arrives; gives up after a while rather than hang.
  void expect(const std::string& line) {
    for (;;) {
      std::string got = block_on(s.async_read_line().add_timeout(5s, r));
      std::printf("  [%s] %s\n", name.c_str(), got.c_str());
      if (got == line) return;
    }
  }
  void say(const std::string& line) {
    std::printf("%s types: %s\n", name.c_str(), line.c_str());
    s.write(line + "\n");
  }
  void expect_end() {
    try {
      std::string got = block_on(s.async_read_line().add_timeout(5s, r));
      throw std::runtime_error(name + " got \"" + got + "\" instead of the end");
    } catch (const net::end_of_stream&) {
      std::printf("  [%s] (connection closed)\n", name.c_str());
    }
  }
};

void script(reactor& r, std::uint16_t port) {
  std::vector<scripted> c;
  const char* names[] = {"alice", "bob", "carol"};
  for (int i = 0; i < 3; ++i) {
    c.push_back({r, names[i], net::connect(r, "127.0.0.1", port)});
    const std::string guest = "guest" + std::to_string(i + 1);
    c[i].expect("* welcome, you are " + guest + "; /nick NAME to rename, /quit to leave");
    for (int j = 0; j < i; ++j) c[j].expect("* " + guest + " joined");
    c[i].say("/nick " + c[i].name);
    for (int j = 0; j <= i; ++j) c[j].expect("* " + guest + " is now " + c[i].name);
  }
  c[0].say("hi all");
  for (auto& x : c) x.expect("<alice> hi all");
  c[1].say("hello alice, tasklets here");
  for (auto& x : c) x.expect("<bob> hello alice, tasklets here");
  c[2].say("/quit");
  c[2].expect("* bye");
  c[2].expect_end();
  c[0].expect("* carol left");
  c[1].expect("* carol left");
  c[1].say("/quit");
  c[1].expect("* bye");
  c[1].expect_end();
  c[0].expect("* bob left");
  c[0].s.close();  // alice just hangs up
}

int demo() {
  reactor r;
  channel<event> events;
  net::listener l = net::listen_tcp(r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0), start_chat(events));
  std::printf("chat server on 127.0.0.1:%u\n", l.port());
  int status = 0;
  tasklet::spawn([&] {
    try {
      script(r, l.port());
      while (l.connection_count() != 0) sleep(1ms);
      std::printf("all clients left\n");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "chat demo failed: %s\n", e.what());
      status = 1;
    }
    l.close();
    events.send({event::shutdown, {}, {}});
    r.stop();
  });
  r.run();
  return status;
}

int serve(std::uint16_t port) {
  reactor r;
  channel<event> events;
  net::listener l = net::listen_tcp(r, port, start_chat(events));
  std::printf("chat server on port %u; try: nc localhost %u (Ctrl-C stops the server)\n", l.port(), l.port());
  std::fflush(stdout);
  asio::signal_set signals(r.context(), SIGINT, SIGTERM);
  signals.async_wait([&](const std::error_code&, int) {
    l.close();
    r.stop();
  });
  r.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--demo") == 0) return demo();
  if (argc == 2) {
    const long port = std::strtol(argv[1], nullptr, 10);
    if (port > 0 && port <= 65535) return serve(static_cast<std::uint16_t>(port));
  }
  std::fprintf(stderr, "usage: %s PORT | --demo\n", argv[0]);
  return 2;
}
