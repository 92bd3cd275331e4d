// An exception escaping a tasklet is rethrown in main, out of run().
#include <twistlet/tasklet.hpp>

#include <cstdio>
#include <stdexcept>

using namespace twistlet;

int main() {
  tasklet::spawn([] {
    std::printf("a: step 1\n");
    schedule();
    std::printf("a: step 2\n");
  });
  tasklet::spawn([] {
    std::printf("b: failing\n");
    throw std::runtime_error("b broke");
  });
  try {
    run();
  } catch (const std::runtime_error& e) {
    std::printf("main caught: %s (runcount=%zu)\n", e.what(), getruncount());
  }
  run();  // the other tasklets were left where they were; this finishes them
  std::printf("main: done\n");
}
