// The reactor's own costs, each next to its closest peer:
//   - a call_later(0) chain (one hop = one loop pass)       vs an asio::post hop on an io_context
//   - call_from_thread from another thread, batch of 1000   vs asio::post from another thread
//   - (c) idle: CPU time and wake-ups per second of a reactor whose only tasklet sleeps 2 s
//         vs a thread in std::this_thread::sleep_for(2 s) (and a bare epoll_wait on a timerfd,
//         what the reactor's wait comes down to); and, for contrast, the same reactor with
//         schedule_interval = 100 us (the 2008 design's periodic poll)
// CPU comes from getrusage(RUSAGE_THREAD), wake-ups from its voluntary context switches (each
// time the thread went to sleep in the kernel). An idle reactor must show zero periodic ones.
#include <benchmark/benchmark.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <twistlet/bridge.hpp>

namespace {

using namespace twistlet;
using namespace std::chrono_literals;

void reactor_call_later_hop(benchmark::State& state) {
  reactor r;
  // As a range-for would: begin() and end() once each (end() starts the timing).
  auto it = state.begin();
  const auto end = state.end();
  std::function<void()> hop = [&] {
    if (it != end) {
      ++it;
      r.call_later(0ns, hop);
    } else {
      r.stop();
    }
  };
  r.call_later(0ns, hop);
  r.run();
}

struct post_hop {
  asio::io_context* io;
  benchmark::State* state;
  void operator()() const {
    if (state->KeepRunning()) asio::post(*io, *this);
  }
};

void asio_post_hop(benchmark::State& state) {
  asio::io_context io(1);
  asio::post(io, post_hop{&io, &state});
  io.run();
}

constexpr int batch = 1000;

// One iteration: another thread posts `batch` calls; the reactor runs them all.
void reactor_call_from_thread(benchmark::State& state) {
  reactor r;
  tasklet::spawn([&] {
    for (auto _ : state) {
      int seen = 0;
      deferred<void> all;
      std::function<void()> count = [&seen, &all] {
        if (++seen == batch) all.callback();
      };
      std::thread poster([&r, &count] {
        for (int i = 0; i < batch; ++i) r.call_from_thread(count);
      });
      block_on(all);
      poster.join();
    }
    r.stop();
  });
  r.run();
}

void asio_post_from_thread(benchmark::State& state) {
  asio::io_context io(1);
  for (auto _ : state) {
    int seen = 0;
    auto work = asio::make_work_guard(io);
    std::thread poster([&] {
      for (int i = 0; i < batch; ++i)
        asio::post(io, [&] {
          if (++seen == batch) work.reset();
        });
    });
    io.restart();
    io.run();
    poster.join();
  }
}

struct usage {
  double cpu_us;
  long wakeups;
  static usage now() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return {static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 +
                static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec),
            u.ru_nvcsw};
  }
};

void report_idle(benchmark::State& state, usage before, usage after, std::chrono::duration<double> wall) {
  const double seconds = wall.count();
  state.counters["cpu_us_per_s"] = (after.cpu_us - before.cpu_us) / seconds;
  state.counters["wakeups_per_s"] = static_cast<double>(after.wakeups - before.wakeups) / seconds;
  state.counters["wakeups"] = static_cast<double>(after.wakeups - before.wakeups);
}

// Measured from the first loop pass after the tasklet fell asleep until it wakes: the cost of
// waiting, without setting the reactor up.
void idle(benchmark::State& state, reactor_options opts, duration sleep_for) {
  for (auto _ : state) {
    reactor r(opts);
    std::chrono::steady_clock::time_point start;
    usage before{};
    tasklet::spawn([&] {
      twistlet::sleep(sleep_for);
      const usage after = usage::now();
      report_idle(state, before, after, std::chrono::steady_clock::now() - start);
      r.stop();
    });
    r.call_later(duration::zero(), [&] {
      start = std::chrono::steady_clock::now();
      before = usage::now();
    });
    r.run();
  }
}

void reactor_idle(benchmark::State& state) { idle(state, {}, 2s); }

void reactor_idle_schedule_interval(benchmark::State& state) {
  idle(state, reactor_options{.schedule_interval = 100us}, 1s);
}

void thread_sleep_for(benchmark::State& state) {
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const usage before = usage::now();
    std::this_thread::sleep_for(2s);
    const usage after = usage::now();
    report_idle(state, before, after, std::chrono::steady_clock::now() - start);
  }
}

// Keeps the CPU time per iteration for the ratio table, the best of the repetitions where a
// benchmark has them (other load on a shared machine only ever adds time), and the counters
// of the idle measurements.
// What the reactor's wait comes down to in the kernel, for comparison: one epoll_wait on a
// timerfd (Asio's reactor uses both).
void epoll_timerfd_wait(benchmark::State& state) {
  for (auto _ : state) {
    const int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    itimerspec when{};
    when.it_value.tv_sec = 2;
    timerfd_settime(tfd, 0, &when, nullptr);
    const auto start = std::chrono::steady_clock::now();
    const usage before = usage::now();
    epoll_wait(ep, &ev, 1, -1);
    const usage after = usage::now();
    report_idle(state, before, after, std::chrono::steady_clock::now() - start);
    close(ep);
    close(tfd);
  }
}

class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.iterations == 0) continue;
      const double per_iteration = r.cpu_accumulated_time * 1e9 / static_cast<double>(r.iterations);
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "min") {
        ns[r.run_name.function_name] = per_iteration;
      } else if (r.run_type == Run::RT_Iteration) {
        ns.emplace(r.run_name.function_name, per_iteration);
        for (const auto& [name, c] : r.counters) counters[r.run_name.function_name][name] = c.value;
      }
    }
  }
  std::map<std::string, double> ns;
  std::map<std::string, std::map<std::string, double>> counters;
};

void best_of_repetitions(benchmark::internal::Benchmark* b) {
  b->Repetitions(5)->DisplayAggregatesOnly(true)->ComputeStatistics("min", [](const std::vector<double>& v) {
    return *std::min_element(v.begin(), v.end());
  });
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("reactor/call_later(0) hop", reactor_call_later_hop)->Apply(best_of_repetitions);
  benchmark::RegisterBenchmark("peer/asio::post hop", asio_post_hop)->Apply(best_of_repetitions);
  benchmark::RegisterBenchmark("reactor/call_from_thread x1000 from a thread", reactor_call_from_thread)
      ->Unit(benchmark::kMicrosecond)
      ->Apply(best_of_repetitions);
  benchmark::RegisterBenchmark("peer/asio::post x1000 from a thread", asio_post_from_thread)
      ->Unit(benchmark::kMicrosecond)
      ->Apply(best_of_repetitions);
  benchmark::RegisterBenchmark("idle/reactor, a tasklet sleeps 2 s", reactor_idle)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("idle/peer: thread sleep_for 2 s", thread_sleep_for)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("idle/peer: epoll_wait on a timerfd 2 s", epoll_timerfd_wait)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("idle/reactor, schedule_interval 100 us, 1 s", reactor_idle_schedule_interval)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  auto ratio = [&](const char* ours, const char* peer, const char* label) {
    auto a = reporter.ns.find(ours);
    auto b = reporter.ns.find(peer);
    if (a == reporter.ns.end() || b == reporter.ns.end()) return;
    std::printf("%-46s %8.3fx the peer's time\n", label, a->second / b->second);
  };
  std::printf("\nratios (twistlet CPU time / peer CPU time, best of 5 repetitions; lower is better)\n");
  ratio("reactor/call_later(0) hop", "peer/asio::post hop", "call_later(0) hop vs asio::post hop");
  ratio("reactor/call_from_thread x1000 from a thread", "peer/asio::post x1000 from a thread",
        "call_from_thread x1000 vs asio::post x1000 (CPU)");

  std::printf("\n(c) idle cost per second of waiting (target: zero periodic wake-ups)\n");
  for (const char* name : {"idle/reactor, a tasklet sleeps 2 s", "idle/peer: thread sleep_for 2 s",
                           "idle/peer: epoll_wait on a timerfd 2 s", "idle/reactor, schedule_interval 100 us, 1 s"}) {
    auto c = reporter.counters.find(name);
    if (c == reporter.counters.end()) continue;
    std::printf("%-46s %10.1f us CPU/s %10.1f wake-ups/s (%.0f in all)\n", name, c->second["cpu_us_per_s"],
                c->second["wakeups_per_s"], c->second["wakeups"]);
  }
  benchmark::Shutdown();
  return 0;
}
