// Reading a deadlock message: every stuck tasklet, by name, and what it waits on.
#include <twistlet/twistlet.hpp>

#include <cstdio>

using namespace twistlet;

int main() {
  channel<int> orders("orders"), invoices("invoices");
  // Each waits for the other to go first.
  tasklet::spawn([&] { invoices.send(orders.receive()); }, {.name = "billing"});
  tasklet::spawn(
      [&] {
        debug::wait_label label("waiting for the first invoice");
        orders.send(invoices.receive());
      },
      {.name = "shipping"});
  try {
    channel<int>("done").receive();  // main waits too: nothing can ever run again
  } catch (const deadlock_error& e) {
    std::printf("%s\n", e.what());
  }
}
