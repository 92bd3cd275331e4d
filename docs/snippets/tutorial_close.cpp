// Ending a stream: close() refuses new waits, stop() also wakes the receivers.
#include <twistlet/channel.hpp>
#include <twistlet/tasklet.hpp>

#include <cstdio>
#include <vector>

using namespace twistlet;

int main() {
  // [range]
  channel<int> ch;
  tasklet::spawn([&] {
    for (int v : ch) std::printf("got %d\n", v);  // receives until the channel is stopped
    std::printf("consumer: end of stream\n");
  });
  tasklet::spawn([&] {
    std::vector<int> values{1, 2, 3};
    ch.send_sequence(values.begin(), values.end());
    ch.stop();  // close, and end the wait of the receiver blocked in the loop
  });
  run();
  // [range]

  // [closing]
  channel<int> c2;
  tasklet::spawn([&] { c2.send(7); });  // a sender that is already waiting...
  schedule();
  c2.close();
  std::printf("closing=%d closed=%d\n", c2.closing(), c2.closed());
  std::printf("drained %d\n", c2.receive());  // ...can still be drained
  std::printf("closing=%d closed=%d\n", c2.closing(), c2.closed());
  try {
    c2.receive();  // would have to wait: refused
  } catch (const channel_closed_error& e) {
    std::printf("channel_closed_error: %s\n", e.what());
  }
  run();
  // [closing]
}
