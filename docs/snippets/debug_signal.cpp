// A dump of every thread's tasklets on SIGUSR1 (try `kill -USR1 <pid>` on a live process).
#include <twistlet/twistlet.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>

using namespace twistlet;
using namespace std::chrono_literals;

int main() {
  debug::install_dump_signal(SIGUSR1);  // opt-in; the handler only wakes a dumper thread

  reactor r;
  channel<int> requests("requests");
  tasklet::spawn([&] { requests.receive(); }, {.name = "server"});
  tasklet::spawn(
      [&] {
        std::raise(SIGUSR1);  // as if an operator had sent it
        twistlet::sleep(300ms);  // the dump goes to stderr meanwhile
        r.stop();
      },
      {.name = "operator"});
  r.run();
  std::printf("done\n");
}
