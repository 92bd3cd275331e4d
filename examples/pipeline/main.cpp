// A producer, three filter stages and a consumer, each a tasklet, joined by channels.
// Every hand-over is a rendezvous: a value moves only when the next stage takes it, so the
// printout shows the stages interleaving in lock step. stop() closes a channel and ends the
// downstream stage's loop, so the end of the stream travels down the pipeline too.
#include <twistlet/channel.hpp>
#include <twistlet/tasklet.hpp>

#include <cstdio>
#include <string>

using namespace twistlet;

int main() {
  channel<int> numbers, odds, squares;
  channel<std::string> labels;

  tasklet::spawn([&] {
    for (int i = 1; i <= 8; ++i) {
      std::printf("producer  -> %d\n", i);
      numbers.send(i);
    }
    numbers.stop();
  }, {.name = "producer"});

  tasklet::spawn([&] {
    for (int n : numbers)
      if (n % 2 == 1) odds.send(n);
      else std::printf("odd-only     drops %d\n", n);
    odds.stop();
  }, {.name = "odd-only"});

  tasklet::spawn([&] {
    for (int n : odds) squares.send(n * n);
    squares.stop();
  }, {.name = "square"});

  tasklet::spawn([&] {
    for (int n : squares) labels.send("square #" + std::to_string(n));
    labels.stop();
  }, {.name = "label"});

  int received = 0;
  tasklet::spawn([&] {
    for (const std::string& s : labels) {
      std::printf("consumer  <- %s\n", s.c_str());
      ++received;
    }
  }, {.name = "consumer"});

  run();  // returns when every stage has finished
  std::printf("pipeline done: %d values reached the consumer\n", received);
  return received == 4 ? 0 : 1;
}
