// Networking costs, twistlet next to plain Asio, with the ratios printed at the end:
//
//   - echo throughput: one load client (plain Asio callbacks, its own thread) keeps N
//     connections busy with one outstanding 64-byte request each against
//       * the twistlet server: one tasklet per connection, `read_some` then `write`, blocking
//         style, on one reactor thread;
//       * a plain Asio callback server (async_read_some / async_write), on one thread.
//     Same client, same connection count, same buffer size, one server thread each; loopback
//     only; each run is bounded in time and in requests; runs alternate between the servers.
//     Also reported: requests per second of server CPU time, which machine load skews less. Reported: requests/s, median of the
//     repetitions, and twistlet / Asio (target >= 0.95 at 50 connections). Reference on this
//     kind of machine: Asio ~93k req/s, Python Twisted ~32k req/s.
//   - memory per idle connection: 10,000 connections from a child process, each held on the
//     server by its own tasklet blocked in a read; RSS (from /proc/self/statm) before and after
//     opening them, divided by the count (target <= 16 KiB, tasklet and buffers included). Each
//     server runs in a fresh process (this program re-executed), so memory freed by earlier
//     benchmarks cannot hide the cost. The plain Asio server with one pending async_read_some
//     per connection is measured the same way for reference.
//
// Arguments: Google Benchmark's. Environment: TWISTLET_BENCH_SECONDS (default 2) sets the
// length of each throughput run; TWISTLET_BENCH_PIN=1 pins client and server to CPUs 0 and 1.
#include "ratio_table.hpp"

#include <benchmark/benchmark.h>

#include <asio.hpp>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <twistlet/bridge.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>

namespace {

using namespace twistlet;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

constexpr std::size_t request_size = 64;
constexpr std::size_t server_buffer = 1024;  // both servers read into this much

/// TWISTLET_BENCH_PIN=1 (and two or more CPUs): the load client and the server each get a CPU
/// of their own, so they never compete for one. Best on an otherwise idle machine; on a busy
/// one, pinning stops the kernel from moving either away from the other load, so it is off by
/// default.
bool pinning() {
  static const bool on = [] {
    const char* s = std::getenv("TWISTLET_BENCH_PIN");
    return s && std::string(s) == "1" && std::thread::hardware_concurrency() >= 2;
  }();
  return on;
}

void pin_to_cpu(int cpu) {
  if (!pinning()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void unpin() {
  if (!pinning()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (unsigned i = 0; i < std::thread::hardware_concurrency(); ++i) CPU_SET(i, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

double run_seconds() {
  const char* s = std::getenv("TWISTLET_BENCH_SECONDS");
  const double v = s ? std::atof(s) : 2.0;
  return v > 0 ? v : 2.0;
}

// ---- the load client -------------------------------------------------------------------------

struct load_result {
  std::uint64_t requests = 0;
  double seconds = 0;
  double server_cpu_seconds = 0;  // CPU time the server thread used meanwhile
  double per_second() const { return seconds > 0 ? static_cast<double>(requests) / seconds : 0; }
  double per_server_cpu_second() const {
    return server_cpu_seconds > 0 ? static_cast<double>(requests) / server_cpu_seconds : 0;
  }
};

double cpu_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// N connections, each sending 64 bytes and waiting for their echo, again and again; counts
/// round trips between the end of a warm-up and a deadline (or a maximum count).
class load_client {
 public:
  load_client(std::uint16_t port, clockid_t server_clock, int connections)
      : port_(port), server_clock_(server_clock), n_(connections) {}

  load_result run(std::chrono::duration<double> warmup, std::chrono::duration<double> measure,
                  std::uint64_t max_requests) {
    asio::io_context ctx(1);
    std::vector<std::unique_ptr<conn>> conns;
    for (int i = 0; i < n_; ++i) {
      conns.push_back(std::make_unique<conn>(ctx, *this));
      conns.back()->sock.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port_));
      conns.back()->sock.set_option(tcp::no_delay(true));
    }
    max_ = max_requests;
    for (auto& c : conns) c->send();
    asio::steady_timer timer(ctx);
    timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(warmup));
    timer.async_wait([&](const std::error_code&) {
      counted_ = 0;
      counting_ = true;
      start_ = std::chrono::steady_clock::now();
      cpu_start_ = cpu_seconds(server_clock_);
      timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(measure));
      timer.async_wait([&](const std::error_code&) { finish(ctx); });
    });
    on_max_ = [&] {
      timer.cancel();
      finish(ctx);
    };
    ctx.run();
    load_result r;
    r.requests = counted_;
    r.seconds = std::chrono::duration<double>(end_ - start_).count();
    r.server_cpu_seconds = cpu_end_ - cpu_start_;
    return r;
  }

 private:
  struct conn {
    conn(asio::io_context& ctx, load_client& o) : sock(ctx), owner(o) {}
    tcp::socket sock;
    load_client& owner;
    char out[request_size] = {};
    char in[request_size];
    void send() {
      asio::async_write(sock, asio::buffer(out), [this](const std::error_code& ec, std::size_t) {
        if (ec) return;
        asio::async_read(sock, asio::buffer(in), [this](const std::error_code& ec2, std::size_t) {
          if (ec2 || owner.done_) return;
          if (owner.counting_ && ++owner.counted_ >= owner.max_) {
            owner.on_max_();
            return;
          }
          send();
        });
      });
    }
  };

  void finish(asio::io_context& ctx) {
    if (done_) return;
    done_ = true;
    end_ = std::chrono::steady_clock::now();
    cpu_end_ = cpu_seconds(server_clock_);
    ctx.stop();
  }

  std::uint16_t port_;
  clockid_t server_clock_;
  int n_;
  double cpu_start_ = 0, cpu_end_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t counted_ = 0;
  bool counting_ = false;
  bool done_ = false;
  std::function<void()> on_max_;
  std::chrono::steady_clock::time_point start_, end_;
};

// ---- the servers -----------------------------------------------------------------------------

/// A server on its own thread; stop() ends it after the clients have gone.
class server_thread {
 public:
  virtual ~server_thread() = default;
  virtual std::uint16_t port() const = 0;
  virtual void stop() = 0;
  /// The CPU-time clock of the server's thread.
  virtual clockid_t cpu_clock() = 0;

 protected:
  static clockid_t clock_of(std::thread& t) {
    clockid_t c{};
    pthread_getcpuclockid(t.native_handle(), &c);
    return c;
  }
};

class twistlet_server final : public server_thread {
 public:
  twistlet_server() {
    std::promise<std::uint16_t> ready;
    auto port = ready.get_future();
    thread_ = std::thread([this, &ready] {
      pthread_setname_np(pthread_self(), "twistlet server");
      pin_to_cpu(1);
      reactor r;
      net::listen_options opts;
      opts.backlog = 4096;
      net::listener l = net::listen_tcp(r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0), [](net::stream s) {
        char buffer[server_buffer];
        for (;;) {
          std::size_t n = 0;
          try {
            n = s.read_some(asio::buffer(buffer));
          } catch (const net::error&) {
            return;
          }
          s.write(asio::buffer(buffer, n));
        }
      }, opts);
      reactor_ = &r;
      listener_ = &l;
      ready.set_value(l.port());
      r.run();
    });
    port_ = port.get();
  }
  std::uint16_t port() const override { return port_; }
  clockid_t cpu_clock() override { return clock_of(thread_); }
  void stop() override {
    reactor* r = reactor_;
    net::listener* l = listener_;
    r->call_from_thread([r, l] {
      l->close();
      tasklet::spawn([r, l] {
        while (l->connection_count() != 0) sleep(1ms);
        r->stop();
      });
    });
    thread_.join();
  }

 private:
  std::thread thread_;
  std::uint16_t port_ = 0;
  reactor* reactor_ = nullptr;
  net::listener* listener_ = nullptr;
};

class asio_server final : public server_thread {
 public:
  asio_server() : ctx_(1), acceptor_(ctx_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    acceptor_.listen(4096);
    accept();
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "asio server");
      pin_to_cpu(1);
      ctx_.run();
    });
  }
  std::uint16_t port() const override { return acceptor_.local_endpoint().port(); }
  clockid_t cpu_clock() override { return clock_of(thread_); }
  void stop() override {
    asio::post(ctx_, [this] { ctx_.stop(); });
    thread_.join();
  }

 private:
  struct session : std::enable_shared_from_this<session> {
    explicit session(tcp::socket s) : sock(std::move(s)) {}
    tcp::socket sock;
    char buffer[server_buffer];
    void read() {
      sock.async_read_some(asio::buffer(buffer), [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
        if (!ec) self->write(n);
      });
    }
    void write(std::size_t n) {
      asio::async_write(sock, asio::buffer(buffer, n), [self = shared_from_this()](const std::error_code& ec, std::size_t) {
        if (!ec) self->read();
      });
    }
  };
  void accept() {
    acceptor_.async_accept([this](const std::error_code& ec, tcp::socket s) {
      if (ec) return;
      s.set_option(tcp::no_delay(true));
      std::make_shared<session>(std::move(s))->read();
      accept();
    });
  }
  asio::io_context ctx_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

struct rates {
  std::vector<double> wall;  // requests per second
  std::vector<double> cpu;   // requests per second of server CPU time
};
std::map<std::string, rates> g_rates;  // "<server>/<connections>" -> one entry per run

template <class Server>
void echo_benchmark(benchmark::State& state, const char* name) {
  const int connections = static_cast<int>(state.range(0));
  load_result result;
  for (auto _ : state) {
    Server server;
    pin_to_cpu(0);
    load_client client(server.port(), server.cpu_clock(), connections);
    result = client.run(300ms, std::chrono::duration<double>(run_seconds()), 50'000'000);
    unpin();
    server.stop();
    state.SetIterationTime(result.seconds);
  }
  state.counters["req_per_s"] = result.per_second();
  state.counters["req_per_server_cpu_s"] = result.per_server_cpu_second();
  rates& r = g_rates[std::string(name) + "/" + std::to_string(connections)];
  r.wall.push_back(result.per_second());
  r.cpu.push_back(result.per_server_cpu_second());
}

void echo_twistlet(benchmark::State& state) { echo_benchmark<twistlet_server>(state, "twistlet"); }
void echo_asio(benchmark::State& state) { echo_benchmark<asio_server>(state, "asio"); }

// ---- memory per idle connection -----------------------------------------------------------

constexpr int idle_connections = 10000;

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

/// A child process that opens `n` connections to `port`, reports on `done_fd`, and holds them
/// until `hold_fd` closes.
pid_t start_connector(std::uint16_t port, int n, int& done_fd, int& hold_fd) {
  int done[2], hold[2];
  if (pipe(done) != 0 || pipe(hold) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(done[0]);
    close(hold[1]);
    std::vector<int> fds;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char ok = 1;
    for (int i = 0; i < n; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ok = 0;
        break;
      }
      fds.push_back(fd);
    }
    if (write(done[1], &ok, 1) != 1) _exit(1);
    char c;
    while (read(hold[0], &c, 1) > 0) {
    }
    _exit(0);
  }
  close(done[1]);
  close(hold[0]);
  done_fd = done[0];
  hold_fd = hold[1];
  return pid;
}

/// Bytes per connection for a first wave of connections (from a fresh server: every byte is
/// new memory) and for a second wave after the first has gone (memory the first wave freed is
/// reused, as in a long-running server).
struct idle_result {
  double first_wave = 0;
  double second_wave = 0;
  bool ok = false;
};

std::map<std::string, idle_result> g_idle;

bool enough_descriptors() {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < idle_connections + 200 && lim.rlim_max >= idle_connections + 200) {
    lim.rlim_cur = idle_connections + 200;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  getrlimit(RLIMIT_NOFILE, &lim);
  return lim.rlim_cur >= idle_connections + 200;
}

/// Waits for the child's report without blocking the reactor.
bool child_done(int fd) {
  char ok = 0;
  return read(fd, &ok, 1) == 1 && ok == 1;
}

template <class Handler>
idle_result measure_twistlet_idle(Handler handler) {
  idle_result out;
  reactor r;
  net::listen_options opts;
  opts.backlog = 4096;
  int blocked = 0;
  net::listener l = net::listen_tcp(
      r, net::tcp_endpoint(asio::ip::address_v4::loopback(), 0),
      [&](net::stream s) { handler(s, blocked); }, opts);
  for (int round = 0; round < 2; ++round) {
    int done_fd = -1, hold_fd = -1;
    blocked = 0;
    const std::size_t before = resident_bytes();
    const pid_t child = start_connector(l.port(), idle_connections, done_fd, hold_fd);
    if (child < 0) return out;
    bool ok = false;
    std::size_t after = 0;
    tasklet::spawn([&] {
      // The child connects while this reactor accepts.
      while (blocked < idle_connections) sleep(1ms);
      sleep(50ms);  // every handler has reached its read
      after = resident_bytes();
      ok = child_done(done_fd) && static_cast<int>(l.connection_count()) == idle_connections;
      close(hold_fd);  // the child exits; every connection ends
      while (l.connection_count() != 0) sleep(1ms);
      r.stop();
    });
    r.run();
    close(done_fd);
    waitpid(child, nullptr, 0);
    out.ok = ok && (round == 0 || out.ok);
    (round == 0 ? out.first_wave : out.second_wave) =
        (static_cast<double>(after) - static_cast<double>(before)) / idle_connections;
  }
  return out;
}

idle_result measure_asio_idle() {
  idle_result out;
  asio::io_context ctx(1);
  tcp::acceptor acceptor(ctx, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  acceptor.listen(4096);
  struct session : std::enable_shared_from_this<session> {
    explicit session(tcp::socket s) : sock(std::move(s)) {}
    tcp::socket sock;
    char buffer[server_buffer];
    void read() {
      sock.async_read_some(asio::buffer(buffer),
                           [self = shared_from_this()](const std::error_code& ec, std::size_t) {
                             if (!ec) self->read();
                           });
    }
  };
  int accepted = 0;
  std::function<void()> accept = [&] {
    acceptor.async_accept([&](const std::error_code& ec, tcp::socket s) {
      if (ec) return;
      std::make_shared<session>(std::move(s))->read();
      ++accepted;
      accept();
    });
  };
  accept();
  for (int round = 0; round < 2; ++round) {
    int done_fd = -1, hold_fd = -1;
    accepted = 0;
    const std::size_t before = resident_bytes();
    const pid_t child = start_connector(acceptor.local_endpoint().port(), idle_connections, done_fd, hold_fd);
    if (child < 0) return out;
    while (accepted < idle_connections) ctx.run_one();
    ctx.run_for(50ms);
    const std::size_t after = resident_bytes();
    out.ok = child_done(done_fd) && (round == 0 || out.ok);
    close(hold_fd);
    waitpid(child, nullptr, 0);
    ctx.run_for(200ms);  // the sessions see the end and go
    close(done_fd);
    (round == 0 ? out.first_wave : out.second_wave) =
        (static_cast<double>(after) - static_cast<double>(before)) / idle_connections;
  }
  return out;
}

/// Runs measurement `which` in a fresh process (this program re-executed with --idle-child),
/// so that no memory freed by earlier benchmarks is reused and hides the cost.
idle_result measure_in_fresh_process(const char* which) {
  idle_result r;
  int out[2];
  if (pipe(out) != 0) return r;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execl("/proc/self/exe", "bench_net", "--idle-child", which, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[256];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  int ok = 0;
  if (std::sscanf(text.c_str(), "%lf %lf %d", &r.first_wave, &r.second_wave, &ok) == 3) r.ok = ok != 0;
  return r;
}

void idle_memory(benchmark::State& state, const char* name, const char* which) {
  if (!enough_descriptors()) {
    state.SkipWithError("needs 10,200 file descriptors");
    for (auto _ : state) {
    }
    return;
  }
  idle_result r;
  for (auto _ : state) r = measure_in_fresh_process(which);
  if (!r.ok) state.SkipWithError("the connections were not all established");
  state.counters["bytes_per_conn_first_wave"] = r.first_wave;
  state.counters["bytes_per_conn_second_wave"] = r.second_wave;
  g_idle[name] = r;
}

idle_result twistlet_read_some_idle() {
  return measure_twistlet_idle([](net::stream& s, int& blocked) {
    char buffer[server_buffer];
    ++blocked;
    try {
      for (;;) s.write(asio::buffer(buffer, s.read_some(asio::buffer(buffer))));
    } catch (const net::error&) {
    }
  });
}

idle_result twistlet_read_line_idle() {
  return measure_twistlet_idle([](net::stream& s, int& blocked) {
    ++blocked;
    try {
      for (;;) s.write(s.read_line() + "\n");
    } catch (const net::error&) {
    }
  });
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--idle-child") {
    if (!enough_descriptors()) return 1;
    const std::string which = argv[2];
    const idle_result r = which == "read_some"   ? twistlet_read_some_idle()
                          : which == "read_line" ? twistlet_read_line_idle()
                                                 : measure_asio_idle();
    std::printf("%.1f %.1f %d\n", r.first_wave, r.second_wave, r.ok ? 1 : 0);
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  // Runs alternate between the two servers, so that drifts in the machine's load hit both
  // alike; the summary takes the median of each.
  const auto echo = [](const char* label, void (*fn)(benchmark::State&), int connections) {
    benchmark::RegisterBenchmark(label, fn)
        ->Arg(connections)
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  };
  for (int connections : {50, 10, 200})
    for (int run = 0; run < (connections == 50 ? 5 : 1); ++run) {
      echo("echo/asio callbacks", echo_asio, connections);
      echo("echo/twistlet tasklets", echo_twistlet, connections);
    }
  benchmark::RegisterBenchmark("idle/twistlet read_some", [](benchmark::State& s) {
    idle_memory(s, "twistlet tasklet blocked in read_some", "read_some");
  })->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("idle/twistlet read_line", [](benchmark::State& s) {
    idle_memory(s, "twistlet tasklet blocked in read_line", "read_line");
  })->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("idle/asio async_read_some", [](benchmark::State& s) {
    idle_memory(s, "asio session with a pending async_read_some", "asio");
  })->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  twistlet_bench::ratio_table table("bench_net");
  if (!g_rates.empty()) {
    std::printf("\necho throughput: median requests/s (and requests per second of server CPU time);\n"
                "one server thread each, the same load client\n");
    for (int connections : {10, 50, 200}) {
      const std::string n = std::to_string(connections);
      const auto a = g_rates.find("asio/" + n);
      const auto t = g_rates.find("twistlet/" + n);
      if (a == g_rates.end() || t == g_rates.end()) continue;
      const double aw = median(a->second.wall), tw = median(t->second.wall);
      const double ac = median(a->second.cpu), tc = median(t->second.cpu);
      std::printf("  %3d connections: asio %7.0f/s (%7.0f/cpu-s)  twistlet %7.0f/s (%7.0f/cpu-s)  "
                  "ratio %.3f (%.3f per cpu-s)%s\n",
                  connections, aw, ac, tw, tc, aw > 0 ? tw / aw : 0.0, ac > 0 ? tc / ac : 0.0,
                  connections == 50 ? "  target >= 0.95" : "");
      if (aw > 0)
        table.add("echo throughput, " + n + " connections (requests/s)", tw / aw, connections == 50 ? ">= 0.95x" : "",
                  "higher", "Asio async echo server");
    }
    std::printf("  reference: Asio ~93k req/s, Python Twisted ~32k req/s on this kind of machine\n");
  }
  if (!g_idle.empty()) {
    std::printf("\nresident memory per idle connection, %d connections from a child process\n"
                "(first wave: from a fresh server; second wave: after the first wave has gone)\n",
                idle_connections);
    for (const auto& [name, r] : g_idle)
      std::printf("  %-46s first %6.0f bytes  second %6.0f bytes%s\n", name.c_str(), r.first_wave, r.second_wave,
                  r.ok ? "" : "  (incomplete)");
    std::printf("  target for twistlet: <= 16384 bytes (first wave)\n");
    const auto t = g_idle.find("twistlet tasklet blocked in read_line");
    const auto a = g_idle.find("asio session with a pending async_read_some");
    if (t != g_idle.end() && a != g_idle.end() && t->second.ok && a->second.ok && a->second.first_wave > 0)
      table.add("RSS per idle connection (twistlet " + std::to_string(static_cast<long>(t->second.first_wave)) +
                    " B, target <= 16 KiB)",
                t->second.first_wave / a->second.first_wave, "", "lower", "Asio session");
  }
  table.print();
  return 0;
}
