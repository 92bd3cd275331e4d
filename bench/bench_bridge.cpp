// block_on round trips, each next to its closest peer, with the ratios printed at the end:
//   (a) a tasklet blocks on a deferred that another tasklet fires
//         vs a Boost.Fiber fiber waiting on a boost::fibers::future another fiber fulfils
//   (b) block_on(defer_later(reactor, 0ns, fn)) inside reactor::run(): a hop through the
//       reactor's timer pass and back
//         vs an asio::post hop on a plain io_context (a handler that posts the next one),
//         and for context the same hop on an io_context that has an I/O object
// and (b) against Twisted + greenlet's ~7.4 us for the same pattern in Python.
#include <benchmark/benchmark.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <boost/fiber/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <twistlet/bridge.hpp>

namespace {

using namespace twistlet;

// (a) The main tasklet waits; a second tasklet fires each deferred as soon as the main
// tasklet blocks on it. One iteration: create, block (switch), fire (switch back), take.
void tasklet_block_on_round_trip(benchmark::State& state) {
  deferred<int> pending;
  tasklet firer = tasklet::spawn([&pending] {
    for (int i = 0;; ++i) {
      deferred<int> d = std::move(pending);
      d.callback(i);
    }
  });
  long sum = 0;
  for (auto _ : state) {
    deferred<int> d;
    pending = d;
    sum += block_on(std::move(d));
  }
  benchmark::DoNotOptimize(sum);
  firer.kill();
}

void fiber_future_round_trip(benchmark::State& state) {
  boost::fibers::promise<int>* pending = nullptr;
  bool done = false;
  boost::fibers::fiber firer([&] {
    for (int i = 0; !done; ++i) {
      while (!pending && !done) boost::this_fiber::yield();
      if (done) break;
      std::exchange(pending, nullptr)->set_value(i);
    }
  });
  long sum = 0;
  for (auto _ : state) {
    boost::fibers::promise<int> p;
    boost::fibers::future<int> f = p.get_future();
    pending = &p;
    sum += f.get();
  }
  benchmark::DoNotOptimize(sum);
  done = true;
  firer.join();
}

// (b) A tasklet inside reactor::run() blocks on a zero-delay timer's deferred: the reactor
// tasklet runs the timer in its next pass, which wakes the tasklet, which schedules the next.
void reactor_defer_later_hop(benchmark::State& state) {
  reactor r;
  tasklet::spawn([&] {
    long sum = 0;
    for (auto _ : state) sum += block_on(defer_later(r, std::chrono::nanoseconds(0), [] { return 1; }));
    benchmark::DoNotOptimize(sum);
    r.stop();
  });
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

// For context: an io_context with any I/O object (here a timer) runs Asio's epoll reactor as
// a task between handlers, one epoll_wait per hop; the reactor's io_context is of this kind.
void asio_post_hop_with_io_object(benchmark::State& state) {
  asio::io_context io(1);
  asio::steady_timer timer(io);
  asio::post(io, post_hop{&io, &state});
  io.run();
}

// Keeps, for the ratio table, the CPU time per iteration of the best of each benchmark's
// repetitions: CPU time and the minimum, so that other load on a shared machine (which only
// ever adds time) skews the ratios as little as possible.
class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs)
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "min" && r.iterations > 0)
        ns[r.run_name.function_name] = r.cpu_accumulated_time * 1e9 / static_cast<double>(r.iterations);
  }
  std::map<std::string, double> ns;
};

void best_of_repetitions(benchmark::internal::Benchmark* b) {
  b->Repetitions(5)->DisplayAggregatesOnly(true)->ComputeStatistics("min", [](const std::vector<double>& v) {
    return *std::min_element(v.begin(), v.end());
  });
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("bridge/block_on, another tasklet fires", tasklet_block_on_round_trip)
      ->Apply(best_of_repetitions);
  benchmark::RegisterBenchmark("peer/fiber future.get, another fiber set_value", fiber_future_round_trip)
      ->Apply(best_of_repetitions);
  benchmark::RegisterBenchmark("bridge/block_on(defer_later(r, 0ns)) in run()", reactor_defer_later_hop)
      ->Apply(best_of_repetitions);
  benchmark::RegisterBenchmark("peer/asio::post hop on an io_context", asio_post_hop)->Apply(best_of_repetitions);
  benchmark::RegisterBenchmark("context/asio::post hop, io_context with a timer", asio_post_hop_with_io_object)
      ->Apply(best_of_repetitions);
  benchmark::Initialize(&argc, argv);
  ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  auto ratio = [&](const char* ours, const char* peer, const char* label, const char* target) {
    auto a = reporter.ns.find(ours);
    auto b = reporter.ns.find(peer);
    if (a == reporter.ns.end() || b == reporter.ns.end()) return;
    std::printf("%-52s %8.3fx the peer's time   (target %s)\n", label, a->second / b->second, target);
  };
  std::printf("\nratios (twistlet CPU time / peer CPU time, best of 5 repetitions each; lower is better)\n");
  ratio("bridge/block_on, another tasklet fires", "peer/fiber future.get, another fiber set_value",
        "(a) block_on round trip vs Boost.Fiber future", "<= 0.3x");
  ratio("bridge/block_on(defer_later(r, 0ns)) in run()", "peer/asio::post hop on an io_context",
        "(b) block_on(defer_later 0) hop vs asio::post hop", "<= 3x");
  ratio("bridge/block_on(defer_later(r, 0ns)) in run()", "context/asio::post hop, io_context with a timer",
        "    the same vs a hop on an io_context with a timer", "-");
  auto hop = reporter.ns.find("bridge/block_on(defer_later(r, 0ns)) in run()");
  if (hop != reporter.ns.end()) {
    constexpr double twisted_greenlet_ns = 7400.0;  // Twisted + greenlet, the same pattern in CPython
    std::printf("%-52s %8.1fx faster than Twisted+greenlet's ~7.4 us   (target >= 30x)\n",
                "(b) block_on(defer_later 0) hop", twisted_greenlet_ns / hop->second);
  }
  benchmark::Shutdown();
  return 0;
}
