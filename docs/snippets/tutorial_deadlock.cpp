// Waiting for something that can never happen is an error, not a hang.
#include <twistlet/channel.hpp>
#include <twistlet/tasklet.hpp>

#include <cstdio>

using namespace twistlet;

int main() {
  channel<int> ch;
  // [main]
  try {
    ch.receive();  // no other tasklet exists: nobody could ever send
  } catch (const deadlock_error& e) {
    std::fprintf(stderr, "%s\n", e.what());
  }
  // [main]

  // [ended]
  tasklet::spawn([&] { std::printf("helper: done, without sending\n"); }, {.name = "helper"});
  try {
    ch.receive();  // the helper runs, ends, and leaves main waiting for ever
  } catch (const deadlock_error& e) {
    std::fprintf(stderr, "%s\n", e.what());
  }
  // [ended]
}
