// Two tasklets take turns: each schedule() lets the other one run.
#include <twistlet/tasklet.hpp>

#include <cstdio>

int main() {
  for (const char* name : {"ping", "pong"}) {
    twistlet::tasklet::spawn([name] {
      for (int i = 1; i <= 3; ++i) {
        std::printf("%s %d\n", name, i);
        twistlet::schedule();  // let the next runnable tasklet have a turn
      }
    });
  }
  std::printf("spawned; nothing has run yet\n");
  twistlet::run();  // runs the queue until only main is left
  std::printf("both done\n");
}
