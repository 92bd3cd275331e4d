// A service runs each request in a tasklet of its own; max_concurrency bounds how many at once.
#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace ta = twistlet::actor;
using namespace std::chrono_literals;

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  twistlet::reactor loop;
  ta::hub hub(sys);
  caf::actor disk = hub.spawn_service({.name = "disk", .max_concurrency = 2}, [](const std::string& file, int ms) {
    std::printf("  start %s\n", file.c_str());
    twistlet::sleep(ms * 1ms);  // blocks this request's tasklet only
    std::printf("  end   %s\n", file.c_str());
  });
  std::vector<twistlet::deferred<void>> reads;
  for (auto [file, ms] : {std::pair{"a", 10}, {"b", 80}, {"c", 10}, {"d", 10}})
    reads.push_back(ta::request<void>(disk, std::string(file), ms));
  std::printf("4 requests sent\n");
  twistlet::block_on(twistlet::gather_results(reads));
  std::printf("all answered\n");
}
