// The backtrace of a suspended tasklet, taken without resuming it.
#include <twistlet/twistlet.hpp>

#include <cstdio>
#include <string>

using namespace twistlet;

[[gnu::noinline]] void wait_for_order(channel<int>& orders) {
  int n = orders.receive();
  std::printf("got order %d\n", n);
}

int main() {
  channel<int> orders("orders");
  tasklet t = tasklet::spawn([&] { wait_for_order(orders); }, {.name = "clerk"});
  schedule();  // the clerk blocks in wait_for_order

  std::string bt = debug::backtrace(t);
  std::fprintf(stderr, "%s", bt.c_str());  // one frame a line, innermost first
  std::printf("the clerk waits in wait_for_order: %d\n", bt.find("wait_for_order") != std::string::npos);

  orders.send(7);  // it resumes as if nothing had happened
}
