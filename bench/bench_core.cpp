// The core layer against its closest peers, side by side in one program:
//   schedule_round_trip   two tasklets yielding to each other      vs boost::context::fiber resume
//   channel_ping_pong     send + reply between two tasklets         vs boost::fibers::unbuffered_channel
//   spawn_run_empty       spawn an empty tasklet and run it to end  vs boost::fibers::fiber + join, pooled stack
//   rss_blocked/N         memory per tasklet blocked in receive()   vs fibers (16 KiB pooled stacks) blocked in pop()
//   rss_blocked_vs_malloc_stacks/N                                  vs the same with plain malloc'd stacks
// Each benchmark is registered as twistlet/<name> and peer/<name>; at the end a table gives the
// ratio twistlet / peer (lower is better for twistlet) next to the target of issue #2.
//
// In the round-trip benchmarks both sides run the same code, as two tasklets of one program
// usually do. The *_main variants (no peer) put main on one side: the two sides then return
// from each switch into different code, and the CPU mispredicts those returns.
//
// The memory measurements run in a forked child each, so that every one starts from the same
// memory state and none inherits another's pools; they report resident memory and, apart,
// the page tables.
#include <twistlet/channel.hpp>
#include <twistlet/tasklet.hpp>

#include "ratio_table.hpp"

#include <benchmark/benchmark.h>
#include <boost/context/fiber.hpp>
#include <boost/fiber/all.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace ctx = boost::context;
namespace fibers = boost::fibers;

// ---- 1. schedule() round trip ---------------------------------------------------------------

// Two tasklets running the same code yield to each other; main waits in run(). The first one
// counts the iterations; both make their schedule() call from the same instruction.
void twistlet_schedule_round_trip(benchmark::State& state) {
  bool stop = false;
  auto body = [&](bool driver) {
    return [&, driver] {
      while (driver ? state.KeepRunning() : !stop) twistlet::schedule();
      stop = true;
    };
  };
  twistlet::tasklet::spawn(body(true));
  twistlet::tasklet::spawn(body(false));
  twistlet::run();
}

// The same between main and one tasklet: the two sides return from schedule() to different
// code, which costs a mispredicted return on each switch.
void twistlet_schedule_round_trip_main(benchmark::State& state) {
  bool stop = false;
  twistlet::tasklet::spawn([&] {
    while (!stop) twistlet::schedule();
  });
  for (auto _ : state) twistlet::schedule();  // to the partner and back
  stop = true;
  twistlet::run();
}

void peer_schedule_round_trip(benchmark::State& state) {
  bool stop = false;
  ctx::fiber partner{[&stop](ctx::fiber&& back) {
    while (!stop) back = std::move(back).resume();
    return std::move(back);
  }};
  for (auto _ : state) partner = std::move(partner).resume();
  stop = true;
  partner = std::move(partner).resume();
}

// ---- 2. channel ping-pong -------------------------------------------------------------------

// Two tasklets running the same code pass a token back and forth over two channels: one
// iteration is a receive and the reply. The driver counts the iterations and, at the end,
// sends -1 to stop the other.
void twistlet_channel_ping_pong(benchmark::State& state) {
  twistlet::channel<int> ping, pong;
  auto body = [&](bool driver, twistlet::channel<int>& in, twistlet::channel<int>& out) {
    return [&, driver] {
      if (driver) out.send(0);
      for (;;) {
        const int token = in.receive();
        if (token < 0 || (driver && !state.KeepRunning())) break;
        out.send(token + 1);
      }
      if (driver) out.send(-1);
    };
  };
  twistlet::tasklet::spawn(body(false, ping, pong));
  twistlet::tasklet::spawn(body(true, pong, ping));
  twistlet::run();
}

// The same with main as one side, for comparison: different call sites on the two sides.
void twistlet_channel_ping_pong_main(benchmark::State& state) {
  twistlet::channel<int> ping, pong;
  twistlet::tasklet::spawn([&] {
    for (int v : ping) pong.send(v);
  });
  int i = 0;
  for (auto _ : state) {
    ping.send(++i);
    benchmark::DoNotOptimize(pong.receive());
  }
  ping.stop();
  twistlet::run();
}

void peer_channel_ping_pong(benchmark::State& state) {
  fibers::unbuffered_channel<int> ping, pong;
  auto body = [&](bool driver, fibers::unbuffered_channel<int>& in, fibers::unbuffered_channel<int>& out) {
    return [&, driver] {
      if (driver) out.push(0);
      for (;;) {
        int token = 0;
        in.pop(token);
        if (token < 0 || (driver && !state.KeepRunning())) break;
        out.push(token + 1);
      }
      if (driver) out.push(-1);
    };
  };
  fibers::fiber a(body(false, ping, pong));
  fibers::fiber b(body(true, pong, ping));
  b.join();
  a.join();
}

// ---- 3. spawn and run an empty tasklet --------------------------------------------------------

void twistlet_spawn_run_empty(benchmark::State& state) {
  for (auto _ : state) {
    twistlet::tasklet::spawn([] {});
    twistlet::run();
  }
}

void peer_spawn_run_empty(benchmark::State& state) {
  // The same stack size as twistlet's default, from a pool as twistlet's stacks are.
  fibers::pooled_fixedsize_stack stacks(128 * 1024);
  for (auto _ : state) {
    fibers::fiber f(std::allocator_arg, stacks, [] {});
    f.join();
  }
}

// ---- 4. RSS per blocked tasklet ----------------------------------------------------------------

// Resident memory, and the kernel memory of the process's page tables (VmPTE), which RSS
// leaves out: a guard page installed with MADV_GUARD_INSTALL costs no memory of its own, but
// its page-table entry keeps a page-table page alive.
struct memory_use {
  double resident = 0;
  double page_tables = 0;
};

memory_use memory_now() {
  memory_use m;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.resident = std::stod(line.substr(6)) * 1024;
    if (line.rfind("VmPTE:", 0) == 0) m.page_tables = std::stod(line.substr(6)) * 1024;
  }
  return m;
}

// Runs `measure(report)` in a forked child, where `report(before, n)` hands the memory grown
// since `before`, per tasklet, to the parent and ends the child at once: the blocked tasklets
// are never torn down.
template <class F>
memory_use in_child(F measure) {
  memory_use result{-1, -1};
  int fds[2];
  if (::pipe(fds) != 0) return result;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const int out = fds[1];
    measure([out](const memory_use& before, long n) {
      const memory_use after = memory_now();
      memory_use per{(after.resident - before.resident) / double(n), (after.page_tables - before.page_tables) / double(n)};
      [[maybe_unused]] auto w = ::write(out, &per, sizeof per);
      ::_exit(0);
    });
    ::_exit(1);
  }
  ::close(fds[1]);
  if (::read(fds[0], &result, sizeof result) != static_cast<ssize_t>(sizeof result)) result = {-1, -1};
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return result;
}

void report_memory(benchmark::State& state, const memory_use& per) {
  if (per.resident < 0) state.SkipWithError("the child failed");
  state.counters["bytes_per_tasklet"] = per.resident;
  state.counters["page_table_bytes_per_tasklet"] = per.page_tables;
}

void twistlet_rss_blocked(benchmark::State& state) {
  const long n = state.range(0);
  memory_use per;
  for (auto _ : state) {
    per = in_child([n](auto report) {
      twistlet::channel<int> ch;
      const memory_use before = memory_now();
      for (long i = 0; i < n; ++i) twistlet::tasklet::spawn([&ch] { ch.receive(); });
      twistlet::run();
      if (ch.balance() == -n) report(before, n);
    });
  }
  report_memory(state, per);
}

// Boost.Fiber with 16 KiB stacks. From a pooled_fixedsize_stack (the peer issue #2 names),
// each fiber costs two resident pages, apparently because the pool writes its free-list link
// into the lowest bytes of every stack it carves; from a plain fixedsize_stack (malloc) the
// stacks lie back to back and a fiber costs about one page: both are measured.
template <class StackAllocator>
void peer_rss_blocked(benchmark::State& state) {
  const long n = state.range(0);
  memory_use per;
  for (auto _ : state) {
    per = in_child([n](auto report) {
      fibers::unbuffered_channel<int> ch;
      StackAllocator stacks(16 * 1024);
      // The handles are the harness's cost, not the fibers': made (and their pages touched)
      // before the first measurement.
      std::vector<fibers::fiber> fs(static_cast<std::size_t>(n));
      const memory_use before = memory_now();
      for (auto& f : fs)
        f = fibers::fiber(std::allocator_arg, stacks, [&ch] {
          int v = 0;
          ch.pop(v);
        });
      boost::this_fiber::yield();  // every fiber runs once and blocks in pop()
      report(before, n);
    });
  }
  report_memory(state, per);
}

// ---- the ratio table --------------------------------------------------------------------------

struct result {
  double time = 0;  // in the benchmark's time unit
  std::string unit;
  std::map<std::string, double> counters;
};

class collecting_reporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, result> results;

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      std::string name = r.benchmark_name();
      if (auto cut = name.find("/iterations:"); cut != std::string::npos) name.erase(cut);
      if (auto cut = name.find("/real_time"); cut != std::string::npos) name.erase(cut);
      result& out = results[name];
      // CPU time: on a shared machine it is far less disturbed by other processes than wall
      // time, and every benchmark here is single-threaded. Best of repetitions.
      const double t = r.GetAdjustedCPUTime();
      if (out.unit.empty() || t < out.time) out.time = t;
      out.unit = benchmark::GetTimeUnitString(r.time_unit);
      for (const auto& [k, c] : r.counters) out.counters[k] = c.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

void print_ratios(const collecting_reporter& rep) {
  twistlet_bench::ratio_table table("bench_core");
  struct row {
    const char* name;
    const char* counter;  // nullptr: compare time
    const char* target;
  };
  const row rows[] = {
      {"schedule_round_trip", nullptr, "<= 2"},
      {"channel_ping_pong", nullptr, "<= 0.1"},
      {"spawn_run_empty", nullptr, "<= 0.25"},
      {"rss_blocked/100000", "bytes_per_tasklet", "<= 1"},
      {"rss_blocked/1000000", "bytes_per_tasklet", "<= 1"},
      {"rss_blocked/100000", "page_table_bytes_per_tasklet", ""},
      {"rss_blocked/1000000", "page_table_bytes_per_tasklet", ""},
      {"rss_blocked_vs_malloc_stacks/100000", "bytes_per_tasklet", "<= 1"},
      {"rss_blocked_vs_malloc_stacks/1000000", "bytes_per_tasklet", "<= 1"},
      {"rss_blocked_vs_malloc_stacks/100000", "page_table_bytes_per_tasklet", ""},
      {"rss_blocked_vs_malloc_stacks/1000000", "page_table_bytes_per_tasklet", ""},
  };
  std::printf("\ntwistlet / peer (CPU time, best of repetitions; memory in bytes per blocked tasklet)\n");
  std::printf("%-50s %14s %14s %9s %8s\n", "benchmark", "twistlet", "peer", "ratio", "target");
  for (const row& r : rows) {
    auto t = rep.results.find(std::string("twistlet/") + r.name);
    auto p = rep.results.find(std::string("peer/") + r.name);
    if (t == rep.results.end() || p == rep.results.end()) continue;
    double a = t->second.time, b = p->second.time;
    // A plain pointer: g++ 12 reports a false -Wrestrict for std::string assignment here.
    const char* unit = t->second.unit.c_str();
    if (r.counter) {
      a = t->second.counters.count(r.counter) ? t->second.counters.at(r.counter) : 0;
      b = p->second.counters.count(r.counter) ? p->second.counters.at(r.counter) : 0;
      unit = "B";
    }
    char ta[32], tb[32];
    std::snprintf(ta, sizeof ta, "%.1f %s", a, unit);
    std::snprintf(tb, sizeof tb, "%.1f %s", b, unit);
    std::string label = r.name;
    if (r.counter && std::strcmp(r.counter, "bytes_per_tasklet") != 0) label += " (page tables)";
    std::printf("%-50s %14s %14s %9.3f %8s\n", label.c_str(), ta, tb, b > 0 ? a / b : 0.0, r.target);
    if (b > 0) table.add(label, a / b, r.target, "lower",
                        std::strcmp(r.name, "schedule_round_trip") == 0 ? "boost::context::fiber" : "Boost.Fiber");
  }
  table.print();
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("twistlet/schedule_round_trip", twistlet_schedule_round_trip);
  benchmark::RegisterBenchmark("peer/schedule_round_trip", peer_schedule_round_trip);
  benchmark::RegisterBenchmark("twistlet/schedule_round_trip_main", twistlet_schedule_round_trip_main);
  benchmark::RegisterBenchmark("twistlet/channel_ping_pong", twistlet_channel_ping_pong);
  benchmark::RegisterBenchmark("peer/channel_ping_pong", peer_channel_ping_pong);
  benchmark::RegisterBenchmark("twistlet/channel_ping_pong_main", twistlet_channel_ping_pong_main);
  benchmark::RegisterBenchmark("twistlet/spawn_run_empty", twistlet_spawn_run_empty);
  benchmark::RegisterBenchmark("peer/spawn_run_empty", peer_spawn_run_empty);
  for (long n : {100'000L, 1'000'000L}) {
    benchmark::RegisterBenchmark("twistlet/rss_blocked", twistlet_rss_blocked)
        ->Arg(n)->Iterations(1)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("peer/rss_blocked", peer_rss_blocked<fibers::pooled_fixedsize_stack>)
        ->Arg(n)->Iterations(1)->Unit(benchmark::kMillisecond);
    // The same twistlet figure, against the plain-malloc peer.
    benchmark::RegisterBenchmark("twistlet/rss_blocked_vs_malloc_stacks", twistlet_rss_blocked)
        ->Arg(n)->Iterations(1)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("peer/rss_blocked_vs_malloc_stacks", peer_rss_blocked<fibers::fixedsize_stack>)
        ->Arg(n)->Iterations(1)->Unit(benchmark::kMillisecond);
  }

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  collecting_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  print_ratios(reporter);
  return 0;
}
