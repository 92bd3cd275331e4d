// Each tasklet has its own stack with a guard page below it. Overflowing it is reported with
// the tasklet's name, and the process aborts.
#include <twistlet/tasklet.hpp>

#include <cstddef>
#include <cstdio>

using namespace twistlet;

// Recurses n levels deep, using a little over 1 KiB of stack per level; returns n.
std::size_t depth(std::size_t n) {
  volatile char frame[1024] = {};
  if (n == 0) return 0;
  return 1 + depth(n - 1) + frame[0];
}

int main() {
  // [sizes]
  tasklet::spawn([] { std::printf("100 levels:  %zu\n", depth(100)); });  // default: 128 KiB
  tasklet::spawn([] { std::printf("1000 levels: %zu\n", depth(1000)); },
                 {.name = "deep", .stack_size = 2 * 1024 * 1024});     // ask for 2 MiB
  run();
  // [sizes]

  // [overflow]
  std::fflush(stdout);
  tasklet::spawn([] { depth(1000); }, {.name = "too-deep"});  // 1 MiB on a 128 KiB stack
  run();  // never returns: "stack overflow in tasklet <id> 'too-deep'", then abort()
  // [overflow]
  std::printf("not reached\n");
}
