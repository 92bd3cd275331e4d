// Deferred and timer-queue costs, each next to its closest peer, with the ratios printed at
// the end:
//   - create a deferred<int>, add a callback, fire it, read the result   vs std::promise/future
//   - a chain of 10 stages                                               vs 10 promise/future hops
//   - manual_clock: schedule 1,000,000 calls, cancel half, run the rest  vs Asio's timer queue
// and the first one against Twisted's ~2.2 us for the same in Python (a fixed reference).
// Ratios are CPU time per iteration, twistlet's over the peer's.
#include <benchmark/benchmark.h>

#include <asio.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <twistlet/deferred.hpp>
#include <twistlet/time.hpp>

#include "ratio_table.hpp"

namespace {

using namespace twistlet;

void deferred_fire(benchmark::State& state) {
  int out = 0;
  int i = 0;
  for (auto _ : state) {
    deferred<int> d;
    d.add_callback([&out](int v) { out = v; });
    d.callback(++i);
    benchmark::DoNotOptimize(out);
  }
}

void promise_fire(benchmark::State& state) {
  int out = 0;
  int i = 0;
  for (auto _ : state) {
    std::promise<int> p;
    std::future<int> f = p.get_future();
    p.set_value(++i);
    out = f.get();
    benchmark::DoNotOptimize(out);
  }
}

void deferred_chain10(benchmark::State& state) {
  int out = 0;
  for (auto _ : state) {
    deferred<int> d;
    deferred<int> tail = d;
    for (int k = 0; k < 10; ++k) tail = tail.add_callback([](int v) { return v + 1; });
    tail.add_callback([&out](int v) { out = v; });
    d.callback(0);
    benchmark::DoNotOptimize(out);
  }
}

void promise_chain10(benchmark::State& state) {
  int out = 0;
  for (auto _ : state) {
    int v = 0;
    for (int k = 0; k < 10; ++k) {
      std::promise<int> p;
      std::future<int> f = p.get_future();
      p.set_value(v);
      v = f.get() + 1;
    }
    out = v;
    benchmark::DoNotOptimize(out);
  }
}

constexpr int timer_count = 1000000;

// Spreads due times over a millisecond, with many ties.
std::chrono::nanoseconds due(int i) { return std::chrono::nanoseconds((static_cast<long long>(i) * 7919) % 1000000); }

void manual_clock_1m(benchmark::State& state) {
  for (auto _ : state) {
    manual_clock clock;
    long long sum = 0;
    std::vector<delayed_call> calls;
    calls.reserve(timer_count);
    for (int i = 0; i < timer_count; ++i) calls.push_back(clock.call_later(due(i), [&sum, i] { sum += i; }));
    for (int i = 0; i < timer_count; i += 2) calls[i].cancel();
    clock.advance(std::chrono::milliseconds(1));
    benchmark::DoNotOptimize(sum);
  }
}

void asio_timers_1m(benchmark::State& state) {
  for (auto _ : state) {
    asio::io_context io;
    long long sum = 0;
    std::vector<std::unique_ptr<asio::steady_timer>> timers;
    timers.reserve(timer_count);
    // Due times in the past, so run() fires them all without waiting, in Asio's heap order.
    const auto base = asio::steady_timer::clock_type::now() - std::chrono::seconds(1);
    for (int i = 0; i < timer_count; ++i) {
      timers.push_back(std::make_unique<asio::steady_timer>(io, base + due(i)));
      timers.back()->async_wait([&sum, i](const asio::error_code& ec) {
        if (!ec) sum += i;
      });
    }
    for (int i = 0; i < timer_count; i += 2) timers[i]->cancel();
    io.run();
    benchmark::DoNotOptimize(sum);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string fire = "deferred/create+add_callback+callback";
  const std::string promise = "peer/promise+future set_value+get";
  const std::string chain = "deferred/chain of 10 stages";
  const std::string promise_chain = "peer/10 promise+future hops";
  const std::string timers = "manual_clock/1M calls, cancel half, advance";
  const std::string asio_timers = "peer/asio 1M steady_timers, cancel half, run";
  benchmark::RegisterBenchmark(fire.c_str(), deferred_fire);
  benchmark::RegisterBenchmark(promise.c_str(), promise_fire);
  benchmark::RegisterBenchmark(chain.c_str(), deferred_chain10);
  benchmark::RegisterBenchmark(promise_chain.c_str(), promise_chain10);
  benchmark::RegisterBenchmark(timers.c_str(), manual_clock_1m)->Unit(benchmark::kMillisecond)->Iterations(3);
  benchmark::RegisterBenchmark(asio_timers.c_str(), asio_timers_1m)->Unit(benchmark::kMillisecond)->Iterations(3);
  benchmark::Initialize(&argc, argv);
  twistlet_bench::ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  twistlet_bench::ratio_table table("bench_deferred");
  table.add_times(reporter, fire, promise, "create+add_callback+callback / promise+future", "<= 0.25x");
  table.add_times(reporter, chain, promise_chain, "10-stage chain / 10 promise+future hops", "-");
  table.add_times(reporter, timers, asio_timers, "1M timers, cancel half / Asio's 1M steady_timers", "-");
  constexpr double twisted_ns = 2200.0;  // Twisted: create + addCallback + callback in CPython
  if (const double ns = reporter.ns(fire); ns > 0)
    table.add("create+add_callback+callback / Twisted's 2.2 us (>= 30x faster)", ns / twisted_ns, "<= 0.0333x", "lower",
              "Twisted in CPython, 2.2 us (fixed)");
  table.print();
  benchmark::Shutdown();
  return 0;
}
