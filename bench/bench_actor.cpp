// The actor layer next to plain CAF, with the ratios printed at the end:
//   (a) request round trip: a tasklet blocks on request() to an event-based actor
//         vs a caf::scoped_actor's request().receive() to the same kind of actor (target <= 1.2x)
//   (b) footprint: 100,000 tasklet actors blocked in receive(), RSS per actor and spawn time
//         vs CAF event-based actors (no stack) and CAF blocking actors (one thread each, 2,000)
//         (targets: <= 6 KiB each; spawned >= 20x faster than blocking actors)
//   (c) remote request throughput over loopback (a second process serves)
//         vs plain CAF remote requests with the same number in flight (target >= 0.9x)
// (b) and the server of (c) run in child processes of this program (`--footprint KIND N`,
// `--echo-server FD`), so that each RSS figure starts clean and the network is real.
#include "ratio_table.hpp"

#include <benchmark/benchmark.h>

#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

namespace ta = twistlet::actor;
using clock_type = std::chrono::steady_clock;

// Class-based CAF actors: CAF 0.17's function-based spawn without arguments has undefined
// behaviour that sanitizer builds report (see docs/actors.md).
struct echo_actor : caf::event_based_actor {
  using caf::event_based_actor::event_based_actor;
  caf::behavior make_behavior() override {
    return {[](int x) { return x; }};
  }
};

caf::actor_system* g_sys = nullptr;

// ---- (a) round trips ------------------------------------------------------------------------

void tasklet_request_round_trip(benchmark::State& state) {
  caf::actor echo = g_sys->spawn<echo_actor>();
  twistlet::reactor loop;
  ta::hub hub(*g_sys);
  twistlet::tasklet::spawn([&] {
    long sum = 0;
    for (auto _ : state) sum += twistlet::block_on(ta::request<int>(echo, 1));
    benchmark::DoNotOptimize(sum);
    loop.stop();
  });
  loop.run();
  caf::anon_send_exit(echo, caf::exit_reason::kill);
}

void scoped_actor_round_trip(benchmark::State& state) {
  caf::actor echo = g_sys->spawn<echo_actor>();
  caf::scoped_actor self{*g_sys};
  long sum = 0;
  for (auto _ : state)
    self->request(echo, caf::infinite, 1).receive([&](int x) { sum += x; }, [](caf::error&) {});
  benchmark::DoNotOptimize(sum);
  caf::anon_send_exit(echo, caf::exit_reason::kill);
}

// For reference: a tasklet asking a tasklet actor on another hub's thread.
void tasklet_to_tasklet_actor_round_trip(benchmark::State& state) {
  ta::hub_thread other(*g_sys);
  caf::actor echo = other.call([](ta::hub& h) {
                           return h.spawn([](ta::tasklet_actor& self) {
                             for (;;) self.receive([](int x) { return x; });
                           });
                         }).get();
  twistlet::reactor loop;
  ta::hub hub(*g_sys);
  twistlet::tasklet::spawn([&] {
    long sum = 0;
    for (auto _ : state) sum += twistlet::block_on(ta::request<int>(echo, 1));
    benchmark::DoNotOptimize(sum);
    loop.stop();
  });
  loop.run();
}

// ---- (b) footprint (child processes) --------------------------------------------------------

std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f) {
    if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

std::atomic<int> g_started{0};

struct idle_actor : caf::event_based_actor {
  using caf::event_based_actor::event_based_actor;
  caf::behavior make_behavior() override {
    g_started.fetch_add(1, std::memory_order_relaxed);
    return {[](int) {}};
  }
};

struct blocked_actor : caf::blocking_actor {
  using caf::blocking_actor::blocking_actor;
  void act() override {
    g_started.fetch_add(1, std::memory_order_relaxed);
    receive([](int) {});
  }
};

void wait_started(int n) {
  while (g_started.load(std::memory_order_relaxed) < n) std::this_thread::sleep_for(std::chrono::microseconds(50));
}

// Prints "<RSS bytes per actor> <ns per spawn>" and leaves without tearing anything down.
[[noreturn]] void footprint(const std::string& kind, int n) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::vector<caf::actor> keep;
  keep.reserve(static_cast<std::size_t>(n));
  std::optional<twistlet::reactor> loop;
  std::optional<ta::hub> hub;
  if (kind == "tasklet") {
    loop.emplace();
    hub.emplace(sys);
  }
  const std::size_t rss0 = resident_bytes();
  const auto t0 = clock_type::now();
  if (kind == "tasklet") {
    for (int i = 0; i < n; ++i)
      keep.push_back(hub->spawn([](ta::tasklet_actor& self) {
        g_started.fetch_add(1, std::memory_order_relaxed);
        self.receive([](int) {});
      }));
    twistlet::run();  // each runs up to its receive(); then only main is left
  } else if (kind == "event") {
    for (int i = 0; i < n; ++i) keep.push_back(sys.spawn<idle_actor>());
  } else {
    for (int i = 0; i < n; ++i) keep.push_back(sys.spawn<blocked_actor>());
  }
  wait_started(n);
  const auto t1 = clock_type::now();
  const std::size_t rss1 = resident_bytes();
  const double per_actor = static_cast<double>(rss1 - rss0) / n;
  const double ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()) / n;
  std::printf("%.1f %.1f\n", per_actor, ns);
  std::fflush(stdout);
  std::_Exit(0);
}

// Runs `bench_actor --footprint kind n` and returns {bytes per actor, ns per spawn}.
std::pair<double, double> run_footprint(const char* self_exe, const char* kind, int n) {
  int fds[2];
  if (::pipe(fds) != 0) return {0, 0};
  const std::string count = std::to_string(n);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::execl(self_exe, self_exe, "--footprint", kind, count.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[256];
  for (ssize_t got; (got = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(got));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::istringstream in(out);
  double bytes = 0, ns = 0;
  in >> bytes >> ns;
  return {bytes, ns};
}

// ---- (c) remote throughput ------------------------------------------------------------------

[[noreturn]] void echo_server(int ready_fd) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  caf::actor caf_echo = sys.spawn<echo_actor>();
  auto caf_port = sys.middleman().publish(caf_echo, 0, "127.0.0.1");
  ta::hub_thread hub(sys);
  std::uint16_t tw_port = hub.call([](ta::hub& h) {
                               caf::actor svc = h.spawn_service([](int x) { return x; });
                               return twistlet::block_on(ta::publish(svc, 0, "127.0.0.1"));
                             }).get();
  const std::string line = std::to_string(caf_port ? *caf_port : 0) + " " + std::to_string(tw_port) + "\n";
  if (::write(ready_fd, line.data(), line.size()) < 0) std::_Exit(1);
  ::close(ready_fd);
  for (;;) ::pause();  // until the benchmark kills it
}

struct server_process {
  pid_t pid = -1;
  std::uint16_t caf_port = 0;
  std::uint16_t twistlet_port = 0;
  ~server_process() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

std::unique_ptr<server_process> start_server(const char* self_exe) {
  int fds[2];
  if (::pipe(fds) != 0) return nullptr;
  const std::string fd = std::to_string(fds[1]);
  auto s = std::make_unique<server_process>();
  s->pid = ::fork();
  if (s->pid == 0) {
    ::close(fds[0]);
    ::execl(self_exe, self_exe, "--echo-server", fd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string line;
  char buf[64];
  for (ssize_t got; line.find('\n') == std::string::npos && (got = ::read(fds[0], buf, sizeof buf)) > 0;)
    line.append(buf, static_cast<std::size_t>(got));
  ::close(fds[0]);
  std::istringstream in(line);
  int a = 0, b = 0;
  in >> a >> b;
  s->caf_port = static_cast<std::uint16_t>(a);
  s->twistlet_port = static_cast<std::uint16_t>(b);
  return s;
}

// `window` tasklets each loop on block_on(request()); returns requests per second.
double twistlet_remote_rate(caf::actor_system& sys, std::uint16_t port, int window, int total) {
  twistlet::reactor loop;
  ta::hub hub(sys);
  caf::actor echo = twistlet::block_on(ta::remote_actor("127.0.0.1", port));
  for (int i = 0; i < 200; ++i) twistlet::block_on(ta::request<int>(echo, i));  // warm up
  int issued = 0;
  int finished = 0;
  const auto t0 = clock_type::now();
  for (int w = 0; w < window; ++w) {
    twistlet::tasklet::spawn([&] {
      while (issued < total) {
        ++issued;
        twistlet::block_on(ta::request<int>(echo, issued));
      }
      if (++finished == window) loop.stop();
    });
  }
  loop.run();
  const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
  return total / s;
}

// A CAF client actor that keeps `window` requests in flight until `total` are answered.
struct caf_client : caf::event_based_actor {
  caf_client(caf::actor_config& cfg, caf::actor echo, int window, int total, std::promise<void>* done)
      : caf::event_based_actor(cfg), echo_(std::move(echo)), window_(window), total_(total), done_(done) {}
  caf::behavior make_behavior() override {
    for (int i = 0; i < window_; ++i) issue();
    return {[](int) {}};
  }
  void issue() {
    if (issued_ >= total_) return;
    ++issued_;
    request(echo_, caf::infinite, issued_).then([this](int) {
      if (++answered_ == total_) {
        done_->set_value();
        quit();
      } else {
        issue();
      }
    });
  }
  caf::actor echo_;
  int window_;
  int total_;
  int issued_ = 0;
  int answered_ = 0;
  std::promise<void>* done_;
};

double caf_remote_rate(caf::actor_system& sys, std::uint16_t port, int window, int total) {
  auto echo = sys.middleman().remote_actor("127.0.0.1", port);
  if (!echo) return 0;
  {
    caf::scoped_actor self{sys};
    for (int i = 0; i < 200; ++i) self->request(*echo, caf::infinite, i).receive([](int) {}, [](caf::error&) {});
  }
  std::promise<void> done;
  const auto t0 = clock_type::now();
  sys.spawn<caf_client>(*echo, window, total, &done);
  done.get_future().wait();
  const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
  return total / s;
}

// ---- reporting ------------------------------------------------------------------------------

// Keeps the mean real time per iteration of every benchmark: the work of a round trip happens
// on several threads, so the waiting thread's CPU time would not measure it.
class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs)
      if (r.run_type == Run::RT_Iteration && r.iterations > 0)
        ns[r.run_name.function_name] = r.real_accumulated_time * 1e9 / static_cast<double>(r.iterations);
  }
  std::map<std::string, double> ns;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--footprint") == 0) footprint(argv[2], std::atoi(argv[3]));
  if (argc == 3 && std::strcmp(argv[1], "--echo-server") == 0) echo_server(std::atoi(argv[2]));
  char self_exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n <= 0) return 1;
  self_exe[n] = '\0';

  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  g_sys = &sys;

  benchmark::RegisterBenchmark("actor/tasklet block_on(request) -> event-based actor", tasklet_request_round_trip)
      ->UseRealTime();
  benchmark::RegisterBenchmark("peer/scoped_actor request().receive() -> event-based actor", scoped_actor_round_trip)
      ->UseRealTime();
  benchmark::RegisterBenchmark("actor/tasklet block_on(request) -> tasklet actor, other hub",
                               tasklet_to_tasklet_actor_round_trip)
      ->UseRealTime();
  benchmark::Initialize(&argc, argv);
  ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf("\n(b) footprint: actors blocked in receive, spawned in fresh child processes (best of 3)\n");
  constexpr int tasklet_count = 100000;
  constexpr int event_count = 100000;
  constexpr int blocking_count = 2000;
  // Three rounds, interleaved; the lowest time of each kind counts (RSS is the same each time).
  std::pair<double, double> tasklets{0, 0}, events{0, 0}, blocking{0, 0};
  auto keep_best = [](std::pair<double, double>& best, std::pair<double, double> got) {
    if (best.second == 0 || (got.second > 0 && got.second < best.second)) best = got;
  };
  for (int round = 0; round < 3; ++round) {
    keep_best(tasklets, run_footprint(self_exe, "tasklet", tasklet_count));
    keep_best(events, run_footprint(self_exe, "event", event_count));
    keep_best(blocking, run_footprint(self_exe, "blocking", blocking_count));
  }
  std::printf("  %-40s %9.0f bytes RSS each  %9.0f ns per spawn\n", "100,000 tasklet actors", tasklets.first,
              tasklets.second);
  std::printf("  %-40s %9.0f bytes RSS each  %9.0f ns per spawn\n", "100,000 CAF event-based actors", events.first,
              events.second);
  std::printf("  %-40s %9.0f bytes RSS each  %9.0f ns per spawn\n", "2,000 CAF blocking actors (threads)",
              blocking.first, blocking.second);

  std::printf("\n(c) remote requests over loopback (best of 5 interleaved runs; 2,000 requests with 1 in flight,\n"
              "    20,000 with 32)\n");
  auto server = start_server(self_exe);
  std::map<std::string, double> rate;
  if (server && server->caf_port && server->twistlet_port) {
    for (int window : {1, 32}) {
      const std::string w = std::to_string(window);
      const int total = window == 1 ? 2000 : 20000;
      // Interleaved, so that a burst of load on the machine hits all three alike.
      for (int run = 0; run < 5; ++run) {
        rate["tw->caf " + w] = std::max(rate["tw->caf " + w], twistlet_remote_rate(sys, server->caf_port, window, total));
        rate["caf->caf " + w] = std::max(rate["caf->caf " + w], caf_remote_rate(sys, server->caf_port, window, total));
        rate["tw->tw " + w] = std::max(rate["tw->tw " + w], twistlet_remote_rate(sys, server->twistlet_port, window, total));
      }
      std::printf("  %2d in flight: twistlet client -> CAF echo %9.0f req/s   CAF client -> CAF echo %9.0f req/s   "
                  "twistlet client -> twistlet service %9.0f req/s\n",
                  window, rate["tw->caf " + w], rate["caf->caf " + w], rate["tw->tw " + w]);
    }
  } else {
    std::printf("  the server process did not start\n");
  }
  server.reset();

  std::printf("\nratios\n");
  twistlet_bench::ratio_table table("bench_actor");
  auto a = reporter.ns.find("actor/tasklet block_on(request) -> event-based actor");
  auto b = reporter.ns.find("peer/scoped_actor request().receive() -> event-based actor");
  if (a != reporter.ns.end() && b != reporter.ns.end())
    std::printf("  %-62s %7.3fx the peer's time   (target <= 1.2x)\n", "(a) request round trip vs scoped_actor",
                a->second / b->second);
  if (a != reporter.ns.end() && b != reporter.ns.end())
    table.add("(a) request round trip (block_on(request))", a->second / b->second, "<= 1.2x", "lower",
              "CAF scoped_actor");
  std::printf("  %-62s %7.2f KiB                (target <= 6 KiB)\n", "(b) RSS per tasklet actor blocked in receive",
              tasklets.first / 1024);
  if (tasklets.second > 0)
    std::printf("  %-62s %7.1fx faster             (target >= 20x)\n", "(b) tasklet actor spawn vs CAF blocking actor",
                blocking.second / tasklets.second);
  if (tasklets.second > 0 && blocking.second > 0)
    table.add("(b) tasklet actor spawn time", tasklets.second / blocking.second, "<= 0.05x", "lower",
              "CAF blocking actor");
  if (tasklets.first > 0 && blocking.first > 0)
    table.add("(b) RSS per actor blocked in receive (twistlet " + std::to_string(static_cast<long>(tasklets.first)) +
                  " B, target <= 6 KiB)",
              tasklets.first / blocking.first, "", "lower", "CAF blocking actor");
  if (tasklets.second > 0)
    std::printf("  %-62s %7.2fx the peer's time\n", "(b) tasklet actor spawn vs CAF event-based actor (for reference)",
                tasklets.second / events.second);
  for (int window : {1, 32}) {
    const std::string w = std::to_string(window);
    if (rate["caf->caf " + w] > 0) {
      std::printf("  (c) remote throughput, %2d in flight, twistlet client / CAF client      %7.3fx   (target >= 0.9x)\n",
                  window, rate["tw->caf " + w] / rate["caf->caf " + w]);
      std::printf("  (c) remote throughput, %2d in flight, twistlet end to end / CAF          %7.3fx   (target >= 0.9x)\n",
                  window, rate["tw->tw " + w] / rate["caf->caf " + w]);
      table.add("(c) remote requests/s, " + w + " in flight, twistlet client", rate["tw->caf " + w] / rate["caf->caf " + w],
                ">= 0.9x", "higher", "CAF client");
      table.add("(c) remote requests/s, " + w + " in flight, twistlet both ends", rate["tw->tw " + w] / rate["caf->caf " + w],
                ">= 0.9x", "higher", "CAF both ends");
    }
  }
  table.print();
  benchmark::Shutdown();
  return 0;
}
