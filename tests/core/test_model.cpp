// A randomized model test: seeded generators drive random sends, receives, kills, throws,
// yields, closes and preference changes across a few channels and scripted actor tasklets,
// and a small reference model of SEMANTICS.md §2 predicts, step by step, every completion in
// order, each channel's balance and closing state, and which actors are blocked.
#include "core/core_test_support.hpp"

#include <deque>
#include <random>
#include <sstream>

using namespace twistlet;
using namespace twistlet_test;

namespace {

// Thrown into a blocked actor by the driver; distinct from test_error, which send_exception
// carries through a channel.
struct interrupt_error : std::runtime_error {
  interrupt_error() : std::runtime_error("interrupt") {}
};

// What happened, in the order it happened. `who` is an actor index, or -1 for the driver.
struct event {
  char kind;  // S sent, R received, E received an exception, C closed error, Y yielded,
              // K killed, I interrupted; s / r / e: the same for the driver
  int who;
  int value;
  bool operator==(const event&) const = default;
};

std::string describe(const std::vector<event>& evs) {
  std::ostringstream out;
  for (const auto& e : evs) out << e.kind << e.who << ':' << e.value << ' ';
  return out.str();
}

enum class op { send, send_exception, receive, yield };

struct command {
  op what = op::yield;
  int ch = 0;
  int value = 0;
};

constexpr int actor_count = 5;
constexpr int channel_count = 3;

// The real system.
struct world {
  std::vector<channel<int>> channels{channel_count};
  std::vector<command> commands{actor_count};
  std::vector<tasklet> actors{actor_count};
  std::vector<event> log;

  // An actor runs the command in its slot, records the completion, and pauses until the
  // driver runs it again with the next command.
  tasklet make_actor(int i) {
    return tasklet([this, i] {
      try {
        for (;;) {
          const command c = commands[i];
          try {
            switch (c.what) {
              case op::send:
                channels[c.ch].send(c.value);
                log.push_back({'S', i, c.value});
                break;
              case op::send_exception:
                channels[c.ch].send_exception(std::make_exception_ptr(test_error(c.value)));
                log.push_back({'S', i, c.value});
                break;
              case op::receive:
                log.push_back({'R', i, channels[c.ch].receive()});
                break;
              case op::yield:
                schedule();
                log.push_back({'Y', i, 0});
                break;
            }
          } catch (const test_error& e) {
            log.push_back({'E', i, e.value});
          } catch (const interrupt_error&) {
            log.push_back({'I', i, 0});
          } catch (const channel_closed_error&) {
            log.push_back({'C', i, 0});
          }
          schedule_remove();
        }
      } catch (const tasklet_exit&) {
        log.push_back({'K', i, 0});
        throw;
      }
    });
  }

  // Lets everything that became runnable finish its turn; every actor ends each turn paused
  // or blocked, so the driver is then alone in the ring.
  void settle() {
    while (getruncount() > 1) schedule();
  }
};

// The reference model.
struct model {
  struct waiter {
    int actor;
    int dir;  // +1 sender, -1 receiver
    bool exception;
    int value;
  };
  struct chan {
    std::deque<waiter> queue;
    int preference = -1;
    bool closing = false;
    int balance() const {
      int b = 0;
      for (const auto& w : queue) b += w.dir;
      return b;
    }
  };
  std::vector<chan> channels{channel_count};
  std::vector<bool> blocked = std::vector<bool>(actor_count, false);
  std::vector<bool> started = std::vector<bool>(actor_count, false);

  // The completion events of a waiter taken by a partner, and of that partner.
  static event waiter_event(const waiter& w) {
    if (w.dir > 0) return {'S', w.actor, w.value};
    return {'R', w.actor, 0};  // value filled in by the caller
  }

  // An operation in direction `dir` by `who` (an actor, or -1 for the driver). Returns the
  // events it causes, in order; `would_block` tells whether it queued.
  std::vector<event> act(int who, int ch, int dir, bool exception, int value, bool& would_block) {
    chan& c = channels[ch];
    would_block = false;
    const bool driver = who < 0;
    const int b = c.balance();
    if (dir > 0 && b < 0) {
      waiter r = c.queue.front();
      c.queue.pop_front();
      blocked[r.actor] = false;
      event got{exception ? 'E' : 'R', r.actor, value};
      event sent{driver ? 's' : 'S', who, value};
      // preference == -dir (-1 for a send): the receiver runs at once.
      if (c.preference == -1) return {got, sent};
      return {sent, got};
    }
    if (dir < 0 && b > 0) {
      waiter s = c.queue.front();
      c.queue.pop_front();
      blocked[s.actor] = false;
      event got{s.exception ? (driver ? 'e' : 'E') : (driver ? 'r' : 'R'), who, s.value};
      event sent{'S', s.actor, s.value};
      // preference == -dir (+1 for a receive): the sender runs at once.
      if (c.preference == 1) return {sent, got};
      return {got, sent};
    }
    if (c.closing) return {{'C', who, 0}};
    c.queue.push_back({who, dir, exception, value});
    blocked[who] = true;
    would_block = true;
    return {};
  }

  // Takes a blocked actor off its channel (kill or throw).
  void unblock(int actor) {
    for (auto& c : channels)
      for (auto it = c.queue.begin(); it != c.queue.end(); ++it)
        if (it->actor == actor) {
          c.queue.erase(it);
          blocked[actor] = false;
          return;
        }
  }
};

void run_model(std::uint32_t seed, int steps) {
  world w;
  model m;
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  for (int i = 0; i < actor_count; ++i) w.actors[i] = w.make_actor(i);
  int next_value = 1;

  for (int step = 0; step < steps; ++step) {
    w.log.clear();
    std::vector<event> expected;
    const int roll = pick(100);
    std::string what;

    if (roll < 60) {
      // An actor that is not blocked performs an operation.
      std::vector<int> idle;
      for (int i = 0; i < actor_count; ++i)
        if (!m.blocked[i]) idle.push_back(i);
      if (idle.empty()) continue;
      const int a = idle[pick(static_cast<int>(idle.size()))];
      command c;
      c.ch = pick(channel_count);
      c.value = next_value++;
      const int kind = pick(10);
      c.what = kind < 4 ? op::send : kind < 5 ? op::send_exception : kind < 9 ? op::receive : op::yield;
      w.commands[a] = c;
      m.started[a] = true;
      if (c.what == op::yield) {
        expected = {{'Y', a, 0}};
      } else {
        bool queued = false;
        const int dir = c.what == op::receive ? -1 : 1;
        expected = m.act(a, c.ch, dir, c.what == op::send_exception, c.value, queued);
      }
      what = "actor " + std::to_string(a) + " op " + std::to_string(int(c.what)) + " on " + std::to_string(c.ch);
      w.actors[a].run();
    } else if (roll < 70) {
      // The driver itself, only when a partner waits (it must never block).
      const int ch = pick(channel_count);
      const int b = m.channels[ch].balance();
      if (b == 0) continue;
      bool queued = false;
      if (b > 0) {
        expected = m.act(-1, ch, -1, false, 0, queued);
        what = "driver receive on " + std::to_string(ch);
        try {
          w.log.push_back({'r', -1, w.channels[ch].receive()});
        } catch (const test_error& e) {
          w.log.push_back({'e', -1, e.value});
        }
      } else {
        const bool exception = pick(4) == 0;
        const int v = next_value++;
        expected = m.act(-1, ch, +1, exception, v, queued);
        what = "driver send on " + std::to_string(ch);
        if (exception)
          w.channels[ch].send_exception(std::make_exception_ptr(test_error(v)));
        else
          w.channels[ch].send(v);
        w.log.push_back({'s', -1, v});
      }
      REQUIRE_FALSE(queued);
    } else if (roll < 80) {
      // Kill an actor, whatever its state, and put a fresh one in its place.
      const int a = pick(actor_count);
      const bool pending = pick(2) == 0;
      m.unblock(a);
      if (m.started[a]) expected = {{'K', a, 0}};
      what = "kill actor " + std::to_string(a) + (pending ? " pending" : "");
      w.actors[a].kill(pending);
      // A non-pending kill has finished before kill() returns.
      if (!pending) CHECK(w.log == expected);
      CHECK(w.actors[a].alive() == pending);
      w.actors[a] = w.make_actor(a);
      m.started[a] = false;
    } else if (roll < 88) {
      // Throw into a blocked actor: it leaves its channel and becomes idle.
      std::vector<int> blocked;
      for (int i = 0; i < actor_count; ++i)
        if (m.blocked[i]) blocked.push_back(i);
      if (blocked.empty()) continue;
      const int a = blocked[pick(static_cast<int>(blocked.size()))];
      const bool pending = pick(2) == 0;
      m.unblock(a);
      expected = {{'I', a, 0}};
      what = "throw into actor " + std::to_string(a) + (pending ? " pending" : "");
      w.actors[a].throw_exception(std::make_exception_ptr(interrupt_error()), pending);
      if (pending) CHECK(w.log.empty());
    } else if (roll < 94) {
      const int ch = pick(channel_count);
      const int p = pick(3) - 1;
      m.channels[ch].preference = p;
      w.channels[ch].set_preference(p);
      what = "preference";
    } else {
      const int ch = pick(channel_count);
      const bool close = pick(3) != 0;  // closing more often makes the closed paths common
      m.channels[ch].closing = close;
      if (close)
        w.channels[ch].close();
      else
        w.channels[ch].open();
      what = close ? "close" : "open";
    }

    w.settle();

    INFO("seed " << seed << " step " << step << ": " << what);
    INFO("expected: " << describe(expected));
    INFO("actual:   " << describe(w.log));
    REQUIRE(w.log == expected);
    REQUIRE(getruncount() == 1);
    for (int c = 0; c < channel_count; ++c) {
      INFO("channel " << c);
      REQUIRE(w.channels[c].balance() == m.channels[c].balance());
      REQUIRE(w.channels[c].closing() == m.channels[c].closing);
      REQUIRE(w.channels[c].closed() == (m.channels[c].closing && m.channels[c].balance() == 0));
    }
    for (int a = 0; a < actor_count; ++a) {
      INFO("actor " << a);
      REQUIRE(w.actors[a].alive());
      REQUIRE(w.actors[a].blocked() == m.blocked[a]);
    }
  }

  for (auto& t : w.actors) t.kill();
  w.settle();
}

}  // namespace

TEST_CASE("random operations on channels agree with the reference model", "[core][model]") {
  for (std::uint32_t seed : {1u, 2u, 3u, 5u, 8u, 13u, 21u, 34u, 55u, 89u, 144u, 233u}) {
    run_model(seed, 3000);
  }
}
