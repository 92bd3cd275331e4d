// The waiter resumes inside callback(), before the firing tasklet goes on.
#include <twistlet/bridge.hpp>
#include <twistlet/deferred.hpp>
#include <twistlet/tasklet.hpp>

#include <cstdio>

using namespace twistlet;

int main() {
  deferred<int> d;
  tasklet::spawn([&] {
    std::printf("waiter: blocking\n");
    int v = block_on(d);
    std::printf("waiter: got %d\n", v);
  });
  tasklet::spawn([&] {
    std::printf("firer: callback(1)\n");
    d.callback(1);  // switches to the waiter at once; the firer goes to the back of the queue
    std::printf("firer: callback returned\n");
  });
  tasklet::spawn([] { std::printf("bystander\n"); });
  run();  // no reactor needed: a tasklet fires the deferred

  // [fired]
  tasklet::spawn([] { std::printf("another tasklet\n"); });
  std::printf("already fired: %d\n", block_on(succeed(5)));  // returns at once, no switch
  run();
  // [fired]
}
