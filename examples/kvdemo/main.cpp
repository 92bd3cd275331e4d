// twistlet's flagship demo: a small key-value service, end to end on loopback.
//
//   kvdemo                        the service and its built-in clients in one process
//   kvdemo --two-process          the service in a second process (started here), clients here
//   kvdemo --server [--port N]    only the service; prints its port; the SHUTDOWN command ends it
//   kvdemo --clients --port N     only the clients, against a running service
//   options: --clients N (8) --requests N (per client, 300) --port N (0: any free port)
//
// The service is the whole idea of twistlet in one program:
//   - a TCP front end with one tasklet per connection, written as plain sequential code:
//     read a line, ask an actor, write the answer;
//   - the keys live in shard actors on two other threads ("hubs"), each shard a tasklet that
//     loops over receive(); a "cold storage" service answers slowly, so its requests carry a
//     timeout that the front end turns into an error reply;
//   - INCR on a value that is not a number fails inside the shard; the exception crosses the
//     actor boundary and comes back to the front end as an error it reports to the client.
// The clients (tasklets on a thread of their own) print a transcript of the first exchanges
// and a summary: requests, throughput, latency percentiles, and a consistency check.
#include <twistlet/actor.hpp>
#include <twistlet/net.hpp>
#include <twistlet/twistlet.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ta = twistlet::actor;
namespace net = twistlet::net;
using namespace std::chrono_literals;
using twistlet::block_on;

namespace kv {

using put_atom = caf::atom_constant<caf::atom("put")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using incr_atom = caf::atom_constant<caf::atom("incr")>;
using del_atom = caf::atom_constant<caf::atom("del")>;
using size_atom = caf::atom_constant<caf::atom("size")>;

constexpr auto shard_timeout = 1s;   // a shard answers in microseconds; this only guards a bug
constexpr auto cold_timeout = 50ms;  // cold storage is allowed this long
constexpr int shard_count = 4;

// A shard owns some of the keys. Its body is an ordinary loop: receive a message, answer it.
// A handler that throws answers the request with an error; the loop goes on.
void shard_body(ta::tasklet_actor& self) {
  std::map<std::string, std::string> data;
  for (;;) {
    try {
      self.receive(
          [&](put_atom, const std::string& key, const std::string& value) {
            data[key] = value;
            return std::string("OK");
          },
          [&](get_atom, const std::string& key) {
            auto it = data.find(key);
            return it == data.end() ? std::string("NIL") : "VALUE " + it->second;
          },
          [&](incr_atom, const std::string& key) {
            std::string& value = data[key];
            long n = 0;
            if (!value.empty()) {
              auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
              if (ec != std::errc() || end != value.data() + value.size())
                throw std::invalid_argument("the value of '" + key + "' is not a number");
            }
            value = std::to_string(n + 1);
            return "VALUE " + value;
          },
          [&](del_atom, const std::string& key) { return std::string(data.erase(key) ? "OK" : "NIL"); },
          [&](size_atom) { return static_cast<int>(data.size()); });
    } catch (const std::invalid_argument&) {
      // Already answered as an error to the requester; the shard keeps serving.
    }
  }
}

// Cold storage: every request runs in a tasklet of its own and may block (sleep stands for a
// slow disk). Keys containing "slow" take longer than the front end is willing to wait.
std::string cold_lookup(get_atom, const std::string& key) {
  twistlet::sleep(key.find("slow") != std::string::npos ? 200ms : 2ms);
  return "VALUE archived(" + key + ")";
}

struct service {
  std::vector<caf::actor> shards;
  caf::actor cold;

  const caf::actor& shard_for(const std::string& key) const {
    return shards[std::hash<std::string>{}(key) % shards.size()];
  }

  // One command line in, one reply line out. Sequential code: each block_on waits for an
  // actor while the reactor serves every other connection.
  std::string execute(std::string_view line) const {
    std::vector<std::string> words;
    for (std::size_t i = 0; i < line.size();) {
      std::size_t j = line.find(' ', i);
      if (j == std::string_view::npos) j = line.size();
      if (j > i) words.emplace_back(line.substr(i, j - i));
      i = j + 1;
    }
    if (words.empty()) return "ERR empty command";
    const std::string& cmd = words[0];
    try {
      if (cmd == "PUT" && words.size() == 3)
        return block_on(ta::request<std::string>(shard_for(words[1]), shard_timeout, put_atom::value, words[1], words[2]));
      if (cmd == "GET" && words.size() == 2) {
        if (words[1].starts_with("cold:"))
          return block_on(ta::request<std::string>(cold, cold_timeout, get_atom::value, words[1]));
        return block_on(ta::request<std::string>(shard_for(words[1]), shard_timeout, get_atom::value, words[1]));
      }
      if (cmd == "INCR" && words.size() == 2)
        return block_on(ta::request<std::string>(shard_for(words[1]), shard_timeout, incr_atom::value, words[1]));
      if (cmd == "DEL" && words.size() == 2)
        return block_on(ta::request<std::string>(shard_for(words[1]), shard_timeout, del_atom::value, words[1]));
      if (cmd == "SIZE" && words.size() == 1) {
        // Ask every shard at once, then wait for all of them.
        std::vector<twistlet::deferred<int>> sizes;
        for (const auto& s : shards) sizes.push_back(ta::request<int>(s, shard_timeout, size_atom::value));
        int total = 0;
        for (int n : block_on(twistlet::gather_results(sizes))) total += n;
        return "VALUE " + std::to_string(total);
      }
    } catch (const twistlet::timeout_error&) {
      return "ERR timeout";
    } catch (const ta::remote_error& e) {
      return std::string("ERR ") + e.what();
    } catch (const ta::actor_error& e) {
      return std::string("ERR ") + e.what();
    }
    return "ERR unknown command: " + std::string(line);
  }
};

}  // namespace kv

namespace {

struct options {
  enum class mode { both, two_process, server, clients } run = mode::both;
  std::uint16_t port = 0;
  int clients = 8;
  int requests = 300;
  int ready_fd = -1;
};

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// ---- the service ---------------------------------------------------------------------------

// Runs the service on this thread until `stop` fires or a client sends SHUTDOWN. Calls
// `ready(port)` once it listens.
template <class Ready>
void run_service(std::uint16_t port, Ready ready) {
  caf::actor_system_config cfg;
  ta::configure(cfg);
  caf::actor_system sys{cfg};
  ta::hub_thread left(sys), right(sys);  // two more threads for the shards and cold storage
  kv::service svc;
  for (int i = 0; i < kv::shard_count; ++i) {
    ta::hub_thread& home = i % 2 ? right : left;
    svc.shards.push_back(home.call([i](ta::hub& h) {
                                return h.spawn(kv::shard_body, {.name = "shard " + std::to_string(i)});
                              }).get());
  }
  svc.cold = right.call([](ta::hub& h) { return h.spawn_service({.name = "cold storage"}, kv::cold_lookup); }).get();

  twistlet::reactor loop;
  ta::hub front(sys);
  std::size_t connections = 0;
  net::listener server = net::listen_tcp(
      loop, net::tcp_endpoint(asio::ip::make_address("127.0.0.1"), port),
      [&](net::stream client) {
        // One tasklet per connection: this function *is* the connection.
        ++connections;
        for (;;) {
          std::string line;
          try {
            line = client.read_line(1024);
          } catch (const net::end_of_stream&) {
            return;
          }
          if (line == "SHUTDOWN") {
            client.write("OK\n");
            loop.stop();
            return;
          }
          if (line == "QUIT") {
            client.write("OK\n");
            return;
          }
          client.write(svc.execute(line) + "\n");
        }
      },
      {.idle_timeout = 10s});
  ready(server.port());
  loop.run();
  say("[service] stopped after " + std::to_string(connections) + " connections");
}

// ---- the clients ---------------------------------------------------------------------------

struct client_stats {
  std::vector<double> latency_us;
  std::map<std::string, int> outcomes;  // reply kind -> count
  int incr_ok = 0;
  long final_hits = -1;
  bool malformed = false;
};

std::string kind_of(const std::string& reply) {
  if (reply.starts_with("ERR timeout")) return "ERR timeout";
  if (reply.starts_with("ERR")) return "ERR (failure in a shard)";
  if (reply.starts_with("VALUE")) return "VALUE";
  if (reply == "OK" || reply == "NIL") return reply;
  return "malformed";
}

// One client: a tasklet holding one connection, issuing requests one after another.
void client_session(twistlet::reactor& r, std::uint16_t port, int id, int requests, client_stats& stats,
                    bool transcript) {
  net::stream s = net::connect(r, "127.0.0.1", port);
  std::mt19937 rng(static_cast<unsigned>(id) * 7919u + 1);
  int shown = 0;
  auto ask = [&](const std::string& command) {
    const auto start = std::chrono::steady_clock::now();
    s.write(command + "\n");
    std::string reply = s.read_line(4096);
    stats.latency_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    const std::string kind = kind_of(reply);
    ++stats.outcomes[kind];
    if (kind == "malformed") stats.malformed = true;
    if (transcript && shown++ < 11) say("  client " + std::to_string(id) + ": " + command + "  ->  " + reply);
    return reply;
  };
  // A scripted start shows every kind of request once; then a random mix.
  const std::string mine = "k" + std::to_string(id);
  const std::vector<std::string> script = {
      "PUT " + mine + ".name v1", "GET " + mine + ".name", "INCR hits",  "INCR " + mine + ".name",
      "PUT " + mine + ".n 41",    "INCR " + mine + ".n",   "GET cold:" + mine, "GET cold:slow-" + mine,
      "DEL " + mine + ".name",    "GET " + mine + ".name", "SIZE"};
  for (int i = 0; i < requests; ++i) {
    if (static_cast<std::size_t>(i) < script.size()) {
      if (ask(script[static_cast<std::size_t>(i)]).starts_with("VALUE") && script[static_cast<std::size_t>(i)] == "INCR hits")
        ++stats.incr_ok;
      continue;
    }
    const std::string key = mine + "." + std::to_string(rng() % 32);
    const unsigned dice = rng() % 100;
    if (dice < 25) ask("PUT " + key + " v" + std::to_string(i));
    else if (dice < 55) ask("GET " + key);
    else if (dice < 75) {
      if (ask("INCR hits").starts_with("VALUE")) ++stats.incr_ok;
    } else if (dice < 80) ask("INCR " + key);  // fails in the shard when the value is "v..."
    else if (dice < 85) ask("GET cold:" + key);
    else if (dice < 86) ask("GET cold:slow-" + key);  // cold storage takes longer than allowed
    else ask("DEL " + key);
  }
  s.write("QUIT\n");
  s.read_line();
}

// Runs every client on a thread of its own (with its own reactor) and prints the summary.
bool run_clients(std::uint16_t port, int clients, int requests, bool shutdown_after) {
  std::vector<client_stats> stats(static_cast<std::size_t>(clients));
  long hits = -1;
  std::string size_reply;
  const auto start = std::chrono::steady_clock::now();
  std::thread runner([&] {
    twistlet::reactor r;
    std::vector<twistlet::deferred<void>> done;
    say("transcript of client 0 (the others run alongside):");
    for (int i = 0; i < clients; ++i)
      done.push_back(twistlet::deferred_tasklet(client_session)(std::ref(r), port, i, requests,
                                                                 std::ref(stats[static_cast<std::size_t>(i)]), i == 0));
    // From main, block_on runs the reactor until every client has finished.
    block_on(twistlet::gather_results(done));
    net::stream s = net::connect(r, "127.0.0.1", port);
    s.write("GET hits\n");
    const std::string reply = s.read_line();
    if (reply.starts_with("VALUE ")) hits = std::stol(reply.substr(6));
    s.write("SIZE\n");
    size_reply = s.read_line();
    s.write(shutdown_after ? "SHUTDOWN\n" : "QUIT\n");
    s.read_line();
  });
  runner.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::vector<double> all;
  std::map<std::string, int> outcomes;
  int incr_ok = 0;
  bool malformed = false;
  for (auto& s : stats) {
    all.insert(all.end(), s.latency_us.begin(), s.latency_us.end());
    for (auto& [k, n] : s.outcomes) outcomes[k] += n;
    incr_ok += s.incr_ok;
    malformed = malformed || s.malformed;
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<std::size_t>(p * static_cast<double>(all.size())))];
  };
  char buf[256];
  say("");
  say("summary");
  std::snprintf(buf, sizeof buf, "  %zu requests from %d clients in %.2f s: %.0f requests/s", all.size(), clients,
                seconds, static_cast<double>(all.size()) / seconds);
  say(buf);
  std::snprintf(buf, sizeof buf, "  latency: p50 %.0f us, p90 %.0f us, p99 %.0f us, max %.0f us", pct(0.50), pct(0.90),
                pct(0.99), all.empty() ? 0.0 : all.back());
  say(buf);
  for (auto& [kind, n] : outcomes) say("  " + kind + ": " + std::to_string(n));
  say("  keys stored: " + size_reply);
  const bool consistent = hits == incr_ok;
  say("  consistency: " + std::to_string(incr_ok) + " successful INCR hits, the service counted " +
      std::to_string(hits) + (consistent ? " (consistent)" : " (MISMATCH)"));
  const bool saw_timeouts = outcomes.count("ERR timeout") > 0;
  const bool saw_failures = outcomes.count("ERR (failure in a shard)") > 0;
  return consistent && !malformed && saw_timeouts && saw_failures;
}

// ---- processes -----------------------------------------------------------------------------

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> long {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "kvdemo: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::strtol(argv[++i], nullptr, 10);
    };
    if (a == "--two-process") o.run = options::mode::two_process;
    else if (a == "--server") o.run = options::mode::server;
    else if (a == "--clients" && (i + 1 >= argc || argv[i + 1][0] == '-')) o.run = options::mode::clients;
    else if (a == "--clients") o.clients = static_cast<int>(value());
    else if (a == "--requests") o.requests = static_cast<int>(value());
    else if (a == "--port") o.port = static_cast<std::uint16_t>(value());
    else if (a == "--ready-fd") o.ready_fd = static_cast<int>(value());
    else {
      std::fprintf(stderr, "usage: kvdemo [--two-process | --server | --clients] [--port N] [--clients N] [--requests N]\n");
      std::exit(2);
    }
  }
  return o;
}

// Starts `kvdemo --server --port 0` as a second process and returns its pid and port.
std::pair<pid_t, std::uint16_t> start_server_process(const char* self) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(fds[0]);
    const std::string fd = std::to_string(fds[1]);
    ::execl(self, self, "--server", "--port", "0", "--ready-fd", fd.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  ::close(fds[1]);
  std::string line;
  char c;
  while (::read(fds[0], &c, 1) == 1 && c != '\n') line += c;
  ::close(fds[0]);
  if (line.empty()) throw std::runtime_error("the service process did not start");
  return {pid, static_cast<std::uint16_t>(std::stoi(line))};
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  switch (o.run) {
    case options::mode::server:
      run_service(o.port, [&](std::uint16_t port) {
        say("[service] listening on 127.0.0.1:" + std::to_string(port));
        if (o.ready_fd >= 0) {
          const std::string line = std::to_string(port) + "\n";
          if (::write(o.ready_fd, line.data(), line.size()) < 0) std::exit(1);
          ::close(o.ready_fd);
        }
      });
      return 0;
    case options::mode::clients:
      if (o.port == 0) {
        std::fprintf(stderr, "kvdemo --clients needs --port N\n");
        return 2;
      }
      return run_clients(o.port, o.clients, o.requests, false) ? 0 : 1;
    case options::mode::two_process: {
      auto [pid, port] = start_server_process("/proc/self/exe");
      say("[main] the service runs in process " + std::to_string(pid) + " on port " + std::to_string(port));
      const bool ok = run_clients(port, o.clients, o.requests, true);
      int status = 0;
      ::waitpid(pid, &status, 0);
      return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    }
    case options::mode::both: {
      std::promise<std::uint16_t> listening;
      std::thread service_thread([&] { run_service(o.port, [&](std::uint16_t port) { listening.set_value(port); }); });
      const std::uint16_t port = listening.get_future().get();
      say("[main] service listening on 127.0.0.1:" + std::to_string(port) + "; " + std::to_string(o.clients) +
          " clients x " + std::to_string(o.requests) + " requests");
      const bool ok = run_clients(port, o.clients, o.requests, true);
      service_thread.join();
      return ok ? 0 : 1;
    }
  }
  return 2;
}
