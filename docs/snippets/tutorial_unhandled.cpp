// A failure that reaches the end of a chain unhandled is reported when the chain goes away.
#include <twistlet/deferred.hpp>

#include <cstdio>
#include <stdexcept>

using namespace twistlet;

int main() {
  // [default]
  {
    deferred<int> d;
    d.add_callback([](int n) { return n + 1; });  // no errback anywhere
    d.errback(std::make_exception_ptr(std::runtime_error("lost connection")));
    std::printf("the chain still holds the failure...\n");
  }  // ...its last handle goes: "Unhandled error in Deferred:" on stderr
  // [default]

  // [handler]
  auto previous = set_unhandled_error_handler([](const failure& f) {
    std::printf("handler: %s\n", f.what().c_str());  // e.g. log it, count it, fail a test
  });
  fail<int>(failure::make(std::logic_error("ignored result")));  // dropped at once: reported
  deferred<int> handled = fail<int>(failure::make(std::logic_error("handled")));
  handled.add_errback([](const failure&) { return 0; });  // consumed: never reported
  set_unhandled_error_handler(previous);
  // [handler]
}
