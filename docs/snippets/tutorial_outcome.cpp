// add_both sees either track as an outcome<T>; a failure keeps the original exception.
#include <twistlet/deferred.hpp>

#include <cstdio>
#include <stdexcept>

using namespace twistlet;

struct http_error : std::runtime_error {
  int status;
  explicit http_error(int s) : std::runtime_error("HTTP error"), status(s) {}
};

void report(deferred<int> d) {
  d.add_both([](outcome<int> o) {
    if (o.has_value()) {
      std::printf("value %d\n", o.value());
    } else if (const http_error* e = o.error().get<http_error>()) {
      std::printf("%s, status %d\n", e->what(), e->status);  // the very object that was thrown
    } else {
      std::printf("failure: %s\n", o.error().what().c_str());
    }
  });
}

int main() {
  report(succeed(200));
  report(fail<int>(failure::make(http_error(404))));
  deferred<int> d;
  report(d);
  d.errback(std::make_exception_ptr(std::out_of_range("no such key")));
}
