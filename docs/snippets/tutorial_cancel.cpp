// cancel(): the one who wanted a result says it no longer does.
#include <twistlet/deferred.hpp>

#include <cstdio>

using namespace twistlet;

void show(deferred<int> d) {
  d.add_errback([](const failure& f) {
    std::printf("  errback: %s\n", f.what().c_str());
    return -1;
  });
}

int main() {
  // [plain]
  std::printf("without a canceller:\n");
  deferred<int> d;
  show(d);
  d.cancel();      // errbacks cancelled_error at once
  d.callback(42);  // the producer does not know yet: its one late callback is ignored
  // [plain]

  // [canceller]
  std::printf("with a canceller:\n");
  deferred<int> job([](deferred<int>&) { std::printf("  canceller: abort the work\n"); });
  show(job);
  job.cancel();  // runs the canceller, then errbacks cancelled_error
  // [canceller]

  // [nested]
  std::printf("waiting on an inner deferred:\n");
  deferred<int> inner([](deferred<int>&) { std::printf("  inner canceller\n"); });
  deferred<int> outer;
  outer.add_callback([&](int) { return inner; });
  show(outer);
  outer.callback(0);  // outer now waits on inner
  outer.cancel();     // cancels inner; outer's errback sees inner's cancelled_error
  // [nested]
}
