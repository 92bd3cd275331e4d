// Cancellers stored in the chain's own arena, and reused chain memory: the canceller rules of
// SEMANTICS §3.4 must hold however the chain grows or reuses its room around the canceller.
#include <catch2/catch.hpp>

#include <array>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <twistlet/deferred.hpp>

using namespace twistlet;

namespace {
struct counted {
  static inline int alive = 0;
  counted() { ++alive; }
  counted(const counted&) { ++alive; }
  counted(counted&&) noexcept { ++alive; }
  ~counted() { --alive; }
};

std::string failure_of(deferred<int> d) {
  std::string what = "no failure";
  d.add_errback([&](const failure& f) {
    what = f.what();
    return 0;
  });
  return what;
}
}  // namespace

TEST_CASE("a small canceller survives stages that overflow the chain's inline room") {
  int calls = 0;
  deferred<int> d;
  detail::chain_access::set_canceller(d, [&calls](deferred<int>&) { ++calls; });
  deferred<int> tail = d;
  // Far more stages than fit beside the canceller: they spill into extra blocks.
  for (int i = 0; i < 50; ++i) tail = tail.add_callback([](int v) { return v + 1; });
  d.cancel();
  CHECK(calls == 1);
  CHECK(failure_of(tail) == "deferred was cancelled");
}

TEST_CASE("a canceller that fires its deferred and then adds stages to it") {
  counted::alive = 0;
  std::vector<int> seen;
  deferred<int> d;
  detail::chain_access::set_canceller(d, [&seen, c = counted()](deferred<int>& self) {
    self.callback(1);
    // The chain ran empty above and may reuse its room; the canceller must not be in it.
    for (int i = 0; i < 8; ++i) self.add_callback([&seen, i](int v) {
      seen.push_back(i);
      return v;
    });
    seen.push_back(100);
  });
  CHECK(counted::alive == 1);
  d.cancel();
  CHECK(seen == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 100});
  CHECK(counted::alive == 0);
  CHECK(d.called());
}

TEST_CASE("a canceller is destroyed when the deferred fires, and never called after") {
  counted::alive = 0;
  int calls = 0;
  deferred<int> d;
  detail::chain_access::set_canceller(d, [&calls, c = counted()](deferred<int>&) { ++calls; });
  d.add_callback([](int v) { return v; });
  CHECK(counted::alive == 1);
  d.callback(3);
  CHECK(counted::alive == 0);
  d.cancel();
  CHECK(calls == 0);
}

TEST_CASE("replacing a canceller destroys the old one") {
  counted::alive = 0;
  std::vector<std::string> calls;
  deferred<int> d;
  detail::chain_access::set_canceller(d, [&calls, c = counted()](deferred<int>&) { calls.push_back("old"); });
  detail::chain_access::set_canceller(d, [&calls, c = counted()](deferred<int>&) { calls.push_back("new"); });
  CHECK(counted::alive == 1);
  d.cancel();
  d.cancel();
  CHECK(calls == std::vector<std::string>{"new"});
  CHECK(counted::alive == 0);
  CHECK(failure_of(d) == "deferred was cancelled");
}

TEST_CASE("a canceller too large for the arena works the same") {
  counted::alive = 0;
  int calls = 0;
  std::array<char, 200> pad{};
  pad[7] = 'x';
  deferred<int> d;
  detail::chain_access::set_canceller(d, [&calls, pad, c = counted()](deferred<int>& self) {
    calls += pad[7] == 'x';
    self.callback(9);
  });
  int value = 0;
  d.add_callback([&](int v) { value = v; });
  d.cancel();
  CHECK(calls == 1);
  CHECK(value == 9);
  CHECK(counted::alive == 0);
}

TEST_CASE("the constructor's canceller, with stages, a pause and a cancel") {
  counted::alive = 0;
  int calls = 0;
  deferred<int> d([&calls, c = counted()](deferred<int>&) { ++calls; });
  deferred<int> tail = d.add_callback([](int v) { return v * 2; }).add_callback([](int v) { return v + 1; });
  d.pause();
  d.cancel();
  CHECK(calls == 1);
  CHECK(counted::alive == 0);
  d.unpause();
  CHECK(failure_of(tail) == "deferred was cancelled");
}

TEST_CASE("a chain whose last handle goes unfired destroys its canceller") {
  counted::alive = 0;
  {
    deferred<int> d;
    detail::chain_access::set_canceller(d, [c = counted()](deferred<int>&) {});
    for (int i = 0; i < 20; ++i) d = d.add_callback([](int v) { return v; });
    CHECK(counted::alive == 1);
  }
  CHECK(counted::alive == 0);
}

TEST_CASE("chains freed and made again, on this thread and on others, start afresh") {
  // Many chains at once, then again: the second round reuses the first one's memory.
  for (int round = 0; round < 2; ++round) {
    std::vector<deferred<int>> ds(300);
    for (auto& d : ds) CHECK_FALSE(d.called());
    int sum = 0;
    for (std::size_t i = 0; i < ds.size(); ++i) {
      ds[i].add_callback([&sum](int v) { sum += v; });
      ds[i].callback(static_cast<int>(i));
    }
    CHECK(sum == 300 * 299 / 2);
  }
  // Another thread's chains go to that thread's cache, which dies with the thread.
  std::thread([] {
    for (int i = 0; i < 3; ++i) {
      deferred<std::string> local;
      local.callback("x");
    }
  }).join();
  deferred<int> after;
  CHECK_FALSE(after.called());
  after.callback(1);
  CHECK(after.called());
}
