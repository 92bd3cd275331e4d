// Many tasklets at once: a token passed around a ring of 100,000 tasklets, and a million
// tasklets blocked on one channel.
#include "core/core_test_support.hpp"

using namespace twistlet;
using namespace twistlet_test;

TEST_CASE("a token passes around a ring of 100000 tasklets", "[core][stress]") {
  const int n = scaled(100'000, 20'000);
  constexpr int laps = 3;
  std::vector<channel<long>> links(n);
  channel<long> out;
  int finished = 0;
  for (int i = 0; i < n; ++i)
    tasklet::spawn([&links, &out, &finished, i, n] {
      channel<long>& left = links[i];
      channel<long>& right = links[(i + 1) % n];
      for (int lap = 0; lap < laps; ++lap) {
        const long token = left.receive() + 1;
        // The last hand-over of the last lap leaves the ring for main.
        (i == n - 1 && lap == laps - 1 ? out : right).send(token);
      }
      ++finished;
    });
  links[0].send(0);
  const long token = out.receive();
  CHECK(token == long(n) * laps);
  run();
  CHECK(finished == n);
  for (const auto& ch : links) REQUIRE(ch.balance() == 0);
}

TEST_CASE("a million tasklets can be blocked at once and all woken by stop()", "[core][stress]") {
  const int n = scaled(1'000'000, 100'000);
  channel<int> ch;
  long received = 0;
  int ended = 0;
  for (int i = 0; i < n; ++i)
    tasklet::spawn([&] {
      for (int v : ch) received += v;
      ++ended;
    });
  run();
  REQUIRE(ch.balance() == -n);
  // A few values first, to the oldest waiters, which queue again behind the others.
  for (int v = 1; v <= 10; ++v) ch.send(v);
  run();
  CHECK(received == 55);
  CHECK(ch.balance() == -n);
  CHECK(ch.stop() == static_cast<std::size_t>(n));
  CHECK(ended == n);
  CHECK(ch.closed());
  CHECK(getruncount() == 1);
}

TEST_CASE("a hundred thousand blocked tasklets killed one by one unwind and leave the channel empty",
          "[core][stress]") {
  const int n = scaled(100'000, 20'000);
  channel<int> ch;
  int destroyed = 0;
  std::vector<tasklet> ts;
  ts.reserve(n);
  for (int i = 0; i < n; ++i)
    ts.push_back(tasklet::spawn([&] {
      dtor_counter guard(destroyed);
      ch.receive();
    }));
  run();
  REQUIRE(ch.balance() == -n);
  // Every other one killed pending (queued to die), the rest at once.
  for (int i = 0; i < n; ++i) ts[i].kill(i % 2 == 0);
  CHECK(ch.balance() == 0);
  run();
  CHECK(destroyed == n);
  for (const auto& t : ts) REQUIRE_FALSE(t.alive());
}
