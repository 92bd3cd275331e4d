// A channel is a rendezvous: send() waits for a receiver, receive() waits for a sender.
#include <twistlet/channel.hpp>
#include <twistlet/tasklet.hpp>

#include <cstdio>
#include <string>

using namespace twistlet;

int main() {
  // [send]
  channel<std::string> ch;

  tasklet::spawn([&] {
    std::printf("sender: sending\n");
    ch.send("hello");  // blocks: nobody is receiving yet
    std::printf("sender: delivered\n");
  });

  std::printf("main: receiving\n");
  std::string got = ch.receive();  // main blocks; the sender runs and hands over the value
  std::printf("main: got '%s'\n", got.c_str());
  run();  // let the sender finish
  // [send]
}
