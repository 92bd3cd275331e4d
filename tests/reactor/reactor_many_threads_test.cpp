// Several reactors, each on its own thread, talking only through the thread-safe entry points
// (call_from_thread, defer_to_thread, keep_alive). These are the paths the ThreadSanitizer
// build (scripts/ci_tsan.sh) must see with real concurrency: results cross threads inside the
// posted calls, and tasklets on every thread block on cross-thread deferreds.
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <twistlet/bridge.hpp>
#include <twistlet/reactor.hpp>

using namespace twistlet;
using namespace std::chrono_literals;

namespace {

constexpr int ring_size = 4;

// One hub: a reactor on its own thread. Its address is published once the reactor exists;
// the latch keeps every thread from posting to a neighbour before that neighbour is up.
struct node {
  std::atomic<reactor*> r{nullptr};
  std::thread thread;
};

}  // namespace

TEST_CASE("reactors on several threads pass a token around a ring with call_from_thread") {
  constexpr int laps = 200;
  std::array<node, ring_size> nodes;
  std::latch ready(ring_size);
  std::array<std::vector<int>, ring_size> seen;  // each written only by its own reactor's thread
  std::atomic<bool> done{false};

  // The token carries a heap payload that each hop reads and extends: a missing
  // happens-before between hops would show up as a race on it.
  struct token {
    int hops = 0;
    std::string trail;
  };
  std::function<void(int, std::unique_ptr<token>)> forward;
  forward = [&](int at, std::unique_ptr<token> t) {
    seen[static_cast<std::size_t>(at)].push_back(t->hops);
    t->trail += static_cast<char>('a' + at);
    if (++t->hops == laps * ring_size) {
      done.store(true);
      for (auto& n : nodes) {
        reactor* other = n.r.load();
        other->call_from_thread([other] { other->stop(); });
      }
      return;
    }
    const int next = (at + 1) % ring_size;
    nodes[static_cast<std::size_t>(next)].r.load()->post_from_thread(
        [&forward, next, t = std::move(t)]() mutable { forward(next, std::move(t)); });
  };

  for (int i = 0; i < ring_size; ++i) {
    nodes[static_cast<std::size_t>(i)].thread = std::thread([&, i] {
      reactor r;
      nodes[static_cast<std::size_t>(i)].r.store(&r);
      ready.count_down();
      ready.wait();
      if (i == 0) r.call_later(0ms, [&] { forward(0, std::make_unique<token>()); });
      // After the last hop only the stop calls are posted, one to each reactor, so nothing
      // reaches a reactor once its run() has returned.
      r.run();
    });
  }
  for (auto& n : nodes) n.thread.join();
  CHECK(done.load());
  for (int i = 0; i < ring_size; ++i) {
    const auto& s = seen[static_cast<std::size_t>(i)];
    REQUIRE(s.size() == laps);
    for (int lap = 0; lap < laps; ++lap) CHECK(s[static_cast<std::size_t>(lap)] == lap * ring_size + i);
  }
}

TEST_CASE("tasklets on several reactors block on defer_to_thread and on each other's replies") {
  constexpr int threads = 3;
  constexpr int jobs = 50;
  std::array<node, threads> nodes;
  std::latch ready(threads);
  std::latch finished(threads);
  std::array<long, threads> sums{};
  std::array<long, threads> replies{};

  for (int i = 0; i < threads; ++i) {
    nodes[static_cast<std::size_t>(i)].thread = std::thread([&, i] {
      reactor r({.thread_pool_size = 2});
      nodes[static_cast<std::size_t>(i)].r.store(&r);
      ready.count_down();
      ready.wait();
      reactor& peer = *nodes[static_cast<std::size_t>((i + 1) % threads)].r.load();
      tasklet::spawn([&, i] {
        long sum = 0;
        for (int j = 0; j < jobs; ++j) {
          // Pool threads of this reactor compute; the value comes back through the reactor.
          auto v = std::make_shared<std::vector<int>>(16, j);
          sum += block_on(r.defer_to_thread([v] {
            long s = 0;
            for (int x : *v) s += x;
            return s;
          }));
          // Ask the next reactor's thread, and get the answer back through call_from_thread.
          // The deferred never leaves this thread (only its address travels); the keep_alive
          // token is taken here and dropped over there, before the answer is posted, so it
          // cannot outlive this reactor.
          deferred<long> answer;
          deferred<long>* reply_to = &answer;
          peer.call_from_thread([&r, reply_to, j, alive = std::make_shared<reactor::keep_alive>(r)]() mutable {
            alive.reset();
            r.call_from_thread([reply_to, j] { reply_to->callback(long(j) * 2); });
          });
          replies[static_cast<std::size_t>(i)] += block_on(answer);
        }
        sums[static_cast<std::size_t>(i)] = sum;
        finished.count_down();
        // Stay up until every peer has had its last answer from us.
        while (!finished.try_wait()) sleep(1ms);
        r.stop();
      });
      r.run();
    });
  }
  for (auto& n : nodes) n.thread.join();
  for (int i = 0; i < threads; ++i) {
    CHECK(sums[static_cast<std::size_t>(i)] == 16L * jobs * (jobs - 1) / 2);
    CHECK(replies[static_cast<std::size_t>(i)] == long(jobs) * (jobs - 1));
  }
}
