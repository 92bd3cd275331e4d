// Listing the tasklets of a thread: state, what each waits on, where it was created.
#include <twistlet/twistlet.hpp>

#include <chrono>
#include <iostream>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  manual_clock clock;  // deterministic time, so the listing is the same on every run
  channel<int> jobs("jobs");
  deferred<int> profile;

  tasklet::spawn([&] { jobs.receive(); }, {.name = "worker"});
  tasklet::spawn([&] { twistlet::sleep(clock, 5s); }, {.name = "sleeper"});
  tasklet::spawn(
      [&] {
        debug::wait_label label("loading profile 42");
        block_on(profile);
      },
      {.name = "loader"});
  tasklet later([] {}, {.name = "later"});  // created, not started
  schedule();  // let each run until it blocks

  clock.advance(2s);
  debug::dump_tasklets(std::cout);

  // The same facts as data:
  for (const debug::tasklet_info& t : debug::list_tasklets())
    if (t.state == debug::tasklet_state::blocked) std::cout << t.name << " waits on " << t.waits_on << '\n';
  profile.callback(1);
  jobs.send(1);
  clock.advance(3s);
}
