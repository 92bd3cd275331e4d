// balance() counts the tasklets waiting on a channel: senders > 0, receivers < 0.
#include <twistlet/channel.hpp>
#include <twistlet/tasklet.hpp>

#include <cstdio>

using namespace twistlet;

int main() {
  channel<int> ch;
  for (int i = 1; i <= 3; ++i) tasklet::spawn([&ch, i] { ch.send(i); });
  schedule();  // the three senders run and block
  std::printf("balance after 3 sends:   %+d\n", ch.balance());

  // Receiving from a waiting sender does not switch (preference -1): no scheduling needed.
  int first = ch.receive();
  std::printf("received %d, balance:     %+d\n", first, ch.balance());
  std::printf("received %d\n", ch.receive());
  std::printf("received %d\n", ch.receive());  // senders queue FIFO
  std::printf("balance when drained:    %+d\n", ch.balance());

  tasklet::spawn([&ch] { std::printf("receiver got %d\n", ch.receive()); });
  schedule();
  std::printf("balance with 1 receiver: %+d\n", ch.balance());
  ch.send(4);
  run();
}
