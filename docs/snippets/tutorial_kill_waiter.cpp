// Killing a tasklet that waits in block_on cancels what it waits on.
#include <twistlet/bridge.hpp>
#include <twistlet/reactor.hpp>

#include <chrono>
#include <cstdio>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  reactor r;
  deferred<int> query([](deferred<int>&) { std::printf("canceller: query abandoned\n"); });

  tasklet client = tasklet::spawn([&] {
    try {
      block_on(query);
    } catch (...) {
      std::printf("client: unwinding\n");  // tasklet_exit passes through here...
      throw;                                 // ...and must be rethrown
    }
  });
  r.call_later(1ms, [&] {
    std::printf("killing the client\n");
    client.kill();
    std::printf("client alive: %d, query called: %d\n", client.alive(), query.called());
    r.stop();
  });
  r.run();
}
