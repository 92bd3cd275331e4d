// Services: every request runs in a tasklet of its own and may block.
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace ta = twistlet::actor;
using namespace std::chrono_literals;

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  twistlet::reactor loop;
  ta::hub hub(sys);

  // [services]
  // "price" looks something up slowly (sleep stands for I/O) and may fail.
  caf::actor price = hub.spawn_service({.name = "price"}, [](const std::string& item) {
    twistlet::sleep(10ms);
    if (item == "unicorn") throw std::out_of_range("no price for " + item);
    return static_cast<int>(item.size()) * 10;
  });
  // "quote" asks "price" for every item at once and blocks until all have answered.
  caf::actor quote = hub.spawn_service({.name = "quote"}, [price](const std::vector<std::string>& items) {
    std::vector<twistlet::deferred<int>> asks;
    for (const auto& item : items) asks.push_back(ta::request<int>(price, item));
    int total = 0;
    try {
      for (int p : twistlet::block_on(twistlet::gather_results(asks, /*consume_errors=*/true))) total += p;
    } catch (const twistlet::first_error& e) {
      e.sub_failure.raise();  // pass the item's own error on, not the wrapper
    }
    return total;
  });
  // [services]

  // [use]
  std::vector<std::string> basket{"tea", "bread", "jam"};
  std::printf("total: %d\n", twistlet::block_on(ta::request<int>(quote, basket)));
  try {
    twistlet::block_on(ta::request<int>(quote, std::vector<std::string>{"tea", "unicorn"}));
  } catch (const ta::remote_error& e) {
    // The exception crossed two requests; its message and type came along.
    std::printf("failed: %s (%s)\n", e.what(), e.type_name.c_str());
  }
  // [use]
}
