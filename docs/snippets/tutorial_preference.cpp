// Who runs on after a hand-over? The channel's preference decides.
#include <twistlet/channel.hpp>
#include <twistlet/tasklet.hpp>

#include <cstdio>

using namespace twistlet;

const char* separator = "";
void say(const char* event) {
  std::printf("%s%s", separator, event);
  separator = " -> ";
}

void trace(int preference, bool receiver_first) {
  std::printf("%+d, %s first:  ", preference, receiver_first ? "receiver" : "sender  ");
  separator = "";
  channel<int> ch;
  ch.set_preference(preference);
  auto receiver = [&] {
    say("R receives");
    ch.receive();
    say("R got it");
  };
  auto sender = [&] {
    say("S sends");
    ch.send(42);
    say("S goes on");
  };
  if (receiver_first) {
    tasklet::spawn(receiver);
    tasklet::spawn(sender);
  } else {
    tasklet::spawn(sender);
    tasklet::spawn(receiver);
  }
  tasklet::spawn([] { say("B"); });  // a bystander, runnable all along
  run();
  std::printf("\n");
}

int main() {
  for (int preference : {-1, 0, +1}) {
    trace(preference, true);
    trace(preference, false);
  }
}
