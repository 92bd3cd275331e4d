// Other threads reach the reactor through call_from_thread; blocking work goes to defer_to_thread.
#include <twistlet/reactor.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

using namespace twistlet;

int main() {
  reactor r;
  const std::thread::id reactor_thread = std::this_thread::get_id();
  auto where = [&] { return std::this_thread::get_id() == reactor_thread ? "the reactor thread" : "another thread"; };

  // [from_thread]
  std::thread worker([&] {
    r.call_from_thread([&] {  // thread-safe: queued, and the sleeping reactor is woken
      std::printf("posted call runs on %s\n", where());
      r.stop();
    });
  });
  r.run();
  worker.join();
  // [from_thread]

  // [to_thread]
  r.defer_to_thread([&] {  // a pool thread: free to block, must not touch tasklets or deferreds
     std::this_thread::sleep_for(std::chrono::milliseconds(2));
     std::printf("blocking work runs on %s\n", where());
     return 6 * 7;
   }).add_callback([&](int answer) {  // fired back in the reactor tasklet
    std::printf("callback gets %d on %s\n", answer, where());
    r.stop();
  });
  r.run();
  // [to_thread]
}
