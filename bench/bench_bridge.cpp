// block_on round trips, each next to its closest peer, with the ratios printed at the end:
//   (a) a tasklet blocks on a deferred that another tasklet fires
//         vs a Boost.Fiber fiber waiting on a boost::fibers::future another fiber fulfils
//   (b) block_on(defer_later(reactor, 0ns, fn)) inside reactor::run(): a hop through the
//       reactor's timer pass and back, against two asio::post hops (a handler that posts the
//       next one):
//         - on a plain io_context, which has no I/O object and so never runs Asio's epoll
//           task: the peer, and the cheapest hop Asio has;
//         - on an io_context with a live I/O object (a timer waiting an hour), which runs the
//           epoll task (an epoll_wait call) between handlers: what a hop through Asio costs
//           in a program that does I/O, as every reactor does
//       and against Twisted + greenlet's ~7.4 us for the same pattern in CPython.
#include <benchmark/benchmark.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <boost/fiber/all.hpp>

#include <chrono>
#include <string>
#include <utility>

#include <twistlet/bridge.hpp>

#include "asio_hop.hpp"
#include "ratio_table.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  const std::string block_on_hop = "bridge/block_on, another tasklet fires";
  const std::string fiber_hop = "peer/fiber future.get, another fiber set_value";
  const std::string reactor_hop = "bridge/block_on(defer_later(r, 0ns)) in run()";
  const std::string plain_post = "peer/asio::post hop, plain io_context (no I/O object)";
  const std::string io_post = "peer/asio::post hop, io_context with a pending timer";
  benchmark::RegisterBenchmark(block_on_hop.c_str(), tasklet_block_on_round_trip);
  benchmark::RegisterBenchmark(fiber_hop.c_str(), fiber_future_round_trip);
  benchmark::RegisterBenchmark(reactor_hop.c_str(), reactor_defer_later_hop);
  benchmark::RegisterBenchmark(plain_post.c_str(), twistlet_bench::asio_post_hop);
  benchmark::RegisterBenchmark(io_post.c_str(), twistlet_bench::asio_post_hop_with_io_object);
  benchmark::Initialize(&argc, argv);
  twistlet_bench::ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  twistlet_bench::ratio_table table("bench_bridge");
  table.add_times(reporter, block_on_hop, fiber_hop, "(a) block_on round trip / Boost.Fiber future", "<= 0.3x");
  table.add_times(reporter, reactor_hop, plain_post, "(b) hop / asio::post hop, plain io_context (issue #4)", "<= 3x");
  table.add_times(reporter, reactor_hop, io_post, "(b) hop / asio::post hop, io_context with I/O object", "<= 3x");
  constexpr double twisted_greenlet_ns = 7400.0;  // Twisted + greenlet, the same pattern in CPython
  if (const double hop = reporter.ns(reactor_hop); hop > 0)
    table.add("(b) hop / Twisted+greenlet's 7.4 us (>= 30x faster)", hop / twisted_greenlet_ns,
              "<= 0.0333x", "lower", "Twisted + greenlet in CPython, 7.4 us (fixed)");
  table.print();
  benchmark::Shutdown();
  return 0;
}
