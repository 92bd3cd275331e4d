// Tasklet stacks: a custom size is usable almost to its end, and an overflow is reported with
// the tasklet's id and name before the process aborts, for each kind of guard.
#include "core/core_test_support.hpp"

#include <signal.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace twistlet;
using namespace twistlet_test;

namespace {

constexpr std::size_t kib = 1024;

std::uintptr_t address_of(const volatile void* p) { return reinterpret_cast<std::uintptr_t>(p); }

// Recurses until a frame lies at or below `floor`, filling every frame, so that the whole
// stack down to `floor` is written. Returns a value that depends on every frame, so the
// recursion cannot be folded away.
[[gnu::noinline]] int dive_to(std::uintptr_t floor, int depth) {
  volatile char frame[256];
  for (auto& c : frame) c = static_cast<char>(0x5A + depth);
  if (address_of(&frame[0]) <= floor) return frame[0];
  return dive_to(floor, depth + 1) + frame[depth % 256];
}

// Recurses until the stack ends; the limit only keeps the compiler from calling it infinite.
volatile int g_no_limit = INT_MAX;
[[gnu::noinline]] int dive(int depth) {
  volatile char frame[256];
  for (auto& c : frame) c = static_cast<char>(depth);
  if (depth >= g_no_limit) return 0;
  return dive(depth + 1) + frame[depth % 256];
}

}  // namespace

TEST_CASE("a tasklet can use most of a custom-sized stack", "[core][stack]") {
  reaper r;
  for (std::size_t size : {16 * kib, 64 * kib, 256 * kib, 1024 * kib}) {
    bool done = false;
    r.spawn([&done, size] {
      volatile char here = 0;
      // 80% of the stack below the tasklet's first frame.
      const std::uintptr_t floor = address_of(&here) - size * 8 / 10;
      dive_to(floor, 0);
      schedule();  // a switch with the stack used this deep (canary guards check at switches)
      dive_to(floor, 0);
      done = true;
    }, {.name = "deep", .stack_size = size});
    run();
    CHECK(done);
  }
}

TEST_CASE("stacks are reused: many tasklets in a row with the same custom size", "[core][stack]") {
  int finished = 0;
  for (int i = 0; i < 2000; ++i) {
    tasklet::spawn([&finished] {
      volatile char here = 0;
      dive_to(address_of(&here) - 16 * kib, 0);
      ++finished;
    }, {.stack_size = 32 * kib});
    if (i % 100 == 99) run();
  }
  run();
  CHECK(finished == 2000);
}

// ---- stack overflow: a death test in a fresh child process ------------------------------------
//
// The guard kind is chosen once per process, at the first stack, from TWISTLET_STACK_GUARD;
// this process has long made that choice, so each case runs in a fresh child.

namespace {

constexpr const char* child_test_name = "child: overflow a tasklet's stack";

void check_overflow_reported(const char* guard_mode) {
  const child_outcome out = run_child_test(child_test_name, "TWISTLET_STACK_GUARD", guard_mode);
  INFO("guard mode: " << (guard_mode ? guard_mode : "(default)") << "\nchild stderr:\n" << out.err);
  // The child announces the id of the tasklet it is about to overflow.
  const std::string_view announce = "overflowing tasklet ";
  const auto at = out.err.find(announce);
  REQUIRE(at != std::string::npos);
  const std::string id = out.err.substr(at + announce.size(), out.err.find('\n', at) - at - announce.size());
  CHECK(out.err.find("stack overflow in tasklet " + id + " 'deep diver'\n") != std::string::npos);
  CHECK(out.signaled);
  CHECK(out.signal == SIGABRT);
}

}  // namespace

TEST_CASE(child_test_name, "[.child]") {
  const char* mode = std::getenv("TWISTLET_STACK_GUARD");
  const bool canary = mode && std::string_view(mode) == "canary";
  constexpr std::size_t size = 64 * kib;
  tasklet t([canary] {
    volatile char here = 0;
    if (canary) {
      // Without a real guard page nothing stops the write, and below the guard page lies
      // other memory: go just past the canary at the stack's end, then switch out.
      dive_to(address_of(&here) - size - 2 * kib, 0);
      schedule();
    } else {
      dive(0);
    }
  }, {.name = "deep diver", .stack_size = size});
  std::string line = "overflowing tasklet " + std::to_string(t.id()) + "\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
  t.insert();
  run();
  std::_Exit(3);  // the overflow went unnoticed
}

TEST_CASE("a stack overflow is reported with the tasklet's id and name and aborts", "[core][stack]") {
  check_overflow_reported(nullptr);
}

TEST_CASE("a stack overflow is reported with mprotect guard pages", "[core][stack]") {
  check_overflow_reported("mprotect");
}

TEST_CASE("a stack overflow is reported at the next switch with canary guards", "[core][stack]") {
  check_overflow_reported("canary");
}
