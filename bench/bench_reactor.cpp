// The reactor's own costs, each next to its closest peer:
//   - a call_later(0) chain (one hop = one loop pass)       vs an asio::post hop on a plain
//         io_context (no I/O object: Asio never runs its epoll task), and on an io_context
//         with a pending timer (one epoll_wait per hop, as in any program doing I/O)
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
#include <asio/steady_timer.hpp>

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

#include <twistlet/bridge.hpp>

#include "asio_hop.hpp"
#include "ratio_table.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  const std::string hop = "reactor/call_later(0) hop";
  const std::string plain_post = "peer/asio::post hop, plain io_context (no I/O object)";
  const std::string io_post = "peer/asio::post hop, io_context with a pending timer";
  const std::string from_thread = "reactor/call_from_thread x1000 from a thread";
  const std::string post_from_thread = "peer/asio::post x1000 from a thread";
  const std::string idle_reactor = "idle/reactor, a tasklet sleeps 2 s";
  const std::string idle_sleep = "idle/peer: thread sleep_for 2 s";
  const std::string idle_epoll = "idle/peer: epoll_wait on a timerfd 2 s";
  const std::string idle_interval = "idle/reactor, schedule_interval 100 us, 1 s";
  benchmark::RegisterBenchmark(hop.c_str(), reactor_call_later_hop);
  benchmark::RegisterBenchmark(plain_post.c_str(), twistlet_bench::asio_post_hop);
  benchmark::RegisterBenchmark(io_post.c_str(), twistlet_bench::asio_post_hop_with_io_object);
  benchmark::RegisterBenchmark(from_thread.c_str(), reactor_call_from_thread)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(post_from_thread.c_str(), asio_post_from_thread)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(idle_reactor.c_str(), reactor_idle)->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(idle_sleep.c_str(), thread_sleep_for)->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(idle_epoll.c_str(), epoll_timerfd_wait)->Iterations(1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(idle_interval.c_str(), reactor_idle_schedule_interval)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  twistlet_bench::ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  twistlet_bench::ratio_table table("bench_reactor");
  table.add_times(reporter, hop, plain_post, "call_later(0) hop / asio::post hop, plain io_context", "-");
  table.add_times(reporter, hop, io_post, "call_later(0) hop / asio::post hop, io_context with I/O", "-");
  table.add_times(reporter, from_thread, post_from_thread, "call_from_thread x1000 / asio::post x1000 (CPU)", "-");
  // An idle reactor must wake no more often than one bare kernel wait for the same sleep.
  const double reactor_wakeups = reporter.counter(idle_reactor, "wakeups_per_s");
  const double epoll_wakeups = reporter.counter(idle_epoll, "wakeups_per_s");
  if (reactor_wakeups >= 0 && epoll_wakeups > 0)
    table.add("idle: wake-ups per s / epoll_wait on a timerfd's", reactor_wakeups / epoll_wakeups, "<= 1x", "lower",
              idle_epoll);

  std::printf("\n(c) idle cost per second of waiting (target: zero periodic wake-ups)\n");
  for (const std::string& name : {idle_reactor, idle_sleep, idle_epoll, idle_interval}) {
    const double wakeups = reporter.counter(name, "wakeups");
    if (wakeups < 0) continue;
    std::printf("%-46s %10.1f us CPU/s %10.1f wake-ups/s (%.0f in all)\n", name.c_str(),
                reporter.counter(name, "cpu_us_per_s"), reporter.counter(name, "wakeups_per_s"), wakeups);
  }
  table.print();
  benchmark::Shutdown();
  return 0;
}
