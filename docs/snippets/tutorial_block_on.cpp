// block_on: sequential code in a tasklet, while the reactor serves everyone else.
#include <twistlet/bridge.hpp>
#include <twistlet/deferred.hpp>
#include <twistlet/reactor.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

using namespace twistlet;
using namespace std::chrono_literals;

// Callback-style APIs, as a network library would offer them.
deferred<std::string> fetch_user(reactor& r, int id) {
  return defer_later(r, 2ms, [id] { return "user" + std::to_string(id); });
}
deferred<int> fetch_balance(reactor& r, const std::string& user) {
  if (user == "user13") return fail<int>(failure::make(std::out_of_range("no account for " + user)));
  return defer_later(r, 1ms, [] { return 100; });
}

int main() {
  reactor r;
  // [sequential]
  tasklet::spawn([&] {
    for (int id : {7, 13}) {
      try {
        std::string user = block_on(fetch_user(r, id));  // the tasklet waits; the reactor runs
        int balance = block_on(fetch_balance(r, user));   // a failure is thrown as itself
        std::printf("%s has %d\n", user.c_str(), balance);
      } catch (const std::out_of_range& e) {
        std::printf("error: %s\n", e.what());
      }
    }
    r.stop();
  });
  r.run();
  // [sequential]
}
