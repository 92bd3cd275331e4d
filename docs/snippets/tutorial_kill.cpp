// kill() raises tasklet_exit where the tasklet waits; its stack unwinds like any exception's.
#include <twistlet/channel.hpp>
#include <twistlet/tasklet.hpp>

#include <cstdio>
#include <stdexcept>

using namespace twistlet;

struct guard {
  ~guard() { std::printf("worker: destructor runs\n"); }
};

int main() {
  channel<int> jobs;
  tasklet worker = tasklet::spawn([&] {
    guard g;
    try {
      for (;;) jobs.receive();  // blocked here when the kill arrives
    } catch (const std::exception&) {
      std::printf("never printed: tasklet_exit is not a std::exception\n");
    }
  }, {.name = "worker"});

  schedule();  // the worker starts and blocks on the channel
  std::printf("blocked=%d balance=%d\n", worker.blocked(), jobs.balance());
  worker.kill();  // switches to the worker now; it unwinds and ends
  std::printf("alive=%d balance=%d\n", worker.alive(), jobs.balance());
  worker.kill();  // killing a dead tasklet does nothing
}
