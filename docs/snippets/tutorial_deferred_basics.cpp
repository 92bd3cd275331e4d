// A deferred is a result that is not there yet, and the chain of callbacks waiting for it.
#include <twistlet/deferred.hpp>

#include <cstdio>
#include <string>

using namespace twistlet;

int main() {
  // [chain]
  deferred<int> d;  // unfired: nobody has the result yet
  d.add_callback([](int n) { return n * 2; })                  // int -> int
      .add_callback([](int n) { return std::to_string(n); })   // int -> std::string
      .add_callback([](const std::string& s) { std::printf("result: %s\n", s.c_str()); });
  std::printf("callbacks added, called=%d\n", d.called());
  d.callback(21);  // fires: the stages run now, in order, each on the previous one's result
  // [chain]

  // [fired]
  deferred<int> ready = succeed(5);  // already fired
  ready.add_callback([](int n) { std::printf("runs at once: %d\n", n); });
  // [fired]

  // [twice]
  try {
    d.callback(1);
  } catch (const already_called_error& e) {
    std::printf("already_called_error: %s\n", e.what());
  }
  // [twice]
}
