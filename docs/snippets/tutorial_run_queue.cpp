// The run queue: spawn() appends, schedule() goes to the back, run() on a tasklet jumps to it.
#include <twistlet/tasklet.hpp>

#include <cstdio>

using namespace twistlet;

void show(const char* what, const tasklet& t) {
  std::printf("%-18s alive=%d scheduled=%d paused=%d runcount=%zu\n", what, t.alive(), t.scheduled(),
              t.paused(), getruncount());
}

int main() {
  // [states]
  tasklet t([] { std::printf("  t runs\n"); }, {.name = "t"});
  show("created:", t);   // alive but paused: not in the run queue
  t.insert();
  show("inserted:", t);  // in the run queue, waiting for its turn
  t.remove();
  show("removed:", t);
  t.run();               // switch to it now; main stays runnable
  show("finished:", t);
  // [states]

  // [order]
  tasklet::spawn([] { std::printf("  a\n"); });
  tasklet::spawn([] { std::printf("  b\n"); });
  tasklet c([] { std::printf("  c (jumped the queue)\n"); });
  c.run();  // c runs first; main resumes when c ends
  std::printf("  main, runcount=%zu\n", getruncount());
  run();    // a and b, in the order they were spawned
  // [order]
}
