// Links against twistlet::twistlet and checks one round through each layer.
#include <twistlet/twistlet.hpp>

#include <cstdio>

int main() {
  using namespace std::chrono_literals;
  twistlet::reactor r;
  twistlet::channel<int> ch;
  twistlet::tasklet::spawn([&] { ch.send(block_on(twistlet::defer_later(r, 1ms, [] { return 20; })) + 1); });
  const int got = twistlet::block_on(twistlet::deferred_tasklet([&] { return ch.receive() * 2; })());
  std::printf("consumer: %d\n", got);
  return got == 42 ? 0 : 1;
}
