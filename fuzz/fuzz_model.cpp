// libFuzzer harness: the input bytes are a program of tasklet, channel and deferred
// operations. Each operation runs on the real framework and on a small reference model
// written here from SEMANTICS.md (channels: balance, FIFO wait queues, preferences, closing;
// tasklets: kill, throw, dropped handles; deferreds: callback/errback stages, pause, cancel,
// chaining onto an inner deferred). After every operation the two must agree exactly on what
// happened, in order; any disagreement aborts, which libFuzzer reports as a crash with the
// input that shows it.
#include <twistlet/channel.hpp>
#include <twistlet/deferred.hpp>
#include <twistlet/tasklet.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

using namespace twistlet;

namespace {

// ---- input ----------------------------------------------------------------------------------

struct input {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t pos = 0;
  bool more() const noexcept { return pos < size; }
  int byte() noexcept { return pos < size ? data[pos++] : 0; }
  int pick(int n) noexcept { return byte() % n; }
};

[[noreturn]] void disagree(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_model: the framework and the model disagree: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void expect(bool ok, const char* what, const std::string& detail = {}) {
  if (!ok) disagree(what, detail);
}

// Carried by send_exception and thrown by stages; the value says which one.
struct test_error : std::runtime_error {
  explicit test_error(int v) : std::runtime_error("test_error"), value(v) {}
  int value;
};
// Thrown into a blocked actor by the driver.
struct interrupt_error : std::runtime_error {
  interrupt_error() : std::runtime_error("interrupt") {}
};

// ---- tasklets and channels ------------------------------------------------------------------

struct event {
  char kind;  // S sent, R received, E got test_error, C channel closed, Y yielded, K killed,
              // I interrupted; s / r / e: the same for the driver (the main tasklet)
  int who;
  int value;
  bool operator==(const event&) const = default;
};

std::string describe(const std::vector<event>& evs) {
  std::string out;
  for (const auto& e : evs) out += e.kind + std::to_string(e.who) + ':' + std::to_string(e.value) + ' ';
  return out;
}

enum class op { send, send_exception, receive, yield };
struct command {
  op what = op::yield;
  int ch = 0;
  int value = 0;
};

constexpr int actor_count = 4;
constexpr int channel_count = 3;

// The real system: actors run the command in their slot, log the completion and pause.
struct world {
  std::vector<channel<int>> channels{channel_count};
  std::vector<command> commands{actor_count};
  std::vector<tasklet> actors{actor_count};
  std::vector<event> log;

  tasklet make_actor(int i) {
    return tasklet([this, i] {
      try {
        for (;;) {
          const command c = commands[static_cast<std::size_t>(i)];
          auto& ch = channels[static_cast<std::size_t>(c.ch)];
          try {
            switch (c.what) {
              case op::send:
                ch.send(c.value);
                log.push_back({'S', i, c.value});
                break;
              case op::send_exception:
                ch.send_exception(std::make_exception_ptr(test_error(c.value)));
                log.push_back({'S', i, c.value});
                break;
              case op::receive:
                log.push_back({'R', i, ch.receive()});
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

  void settle() {
    while (getruncount() > 1) schedule();
  }
};

// The model of SEMANTICS.md §2 for the same operations.
struct model {
  enum class payload { value, error, closed };
  struct waiter {
    int actor;
    int dir;  // +1 sender, -1 receiver
    payload what;
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

  static char received_kind(payload p, bool driver) {
    switch (p) {
      case payload::value: return driver ? 'r' : 'R';
      case payload::error: return driver ? 'e' : 'E';
      case payload::closed: return 'C';
    }
    return '?';
  }

  // An operation in direction `dir` by `who` (an actor, or -1 for the driver): the events it
  // causes, in order. `quiet` leaves out the sender's own event (channel::stop()).
  std::vector<event> act(int who, int ch, int dir, payload what, int value, bool& queued, bool quiet = false) {
    chan& c = channels[static_cast<std::size_t>(ch)];
    queued = false;
    const bool driver = who < 0;
    const int b = c.balance();
    if (dir > 0 && b < 0) {
      waiter r = c.queue.front();
      c.queue.pop_front();
      blocked[static_cast<std::size_t>(r.actor)] = false;
      event got{received_kind(what, false), r.actor, what == payload::closed ? 0 : value};
      if (quiet) return {got};
      event sent{driver ? 's' : 'S', who, value};
      if (c.preference == -1) return {got, sent};  // the receiver runs at once
      return {sent, got};
    }
    if (dir < 0 && b > 0) {
      waiter s = c.queue.front();
      c.queue.pop_front();
      blocked[static_cast<std::size_t>(s.actor)] = false;
      event got{received_kind(s.what, driver), who, s.value};
      event sent{'S', s.actor, s.value};
      if (c.preference == 1) return {sent, got};  // the sender runs at once
      return {got, sent};
    }
    if (c.closing) return {{'C', who, 0}};
    c.queue.push_back({who, dir, what, value});
    blocked[static_cast<std::size_t>(who)] = true;
    queued = true;
    return {};
  }

  void unblock(int actor) {
    for (auto& c : channels)
      for (auto it = c.queue.begin(); it != c.queue.end(); ++it)
        if (it->actor == actor) {
          c.queue.erase(it);
          blocked[static_cast<std::size_t>(actor)] = false;
          return;
        }
  }
};

// ---- deferreds ------------------------------------------------------------------------------

// A stage's function was called: (stage, it got a failure, the value or error code).
struct call {
  int stage;
  bool failed;
  int value;
  bool operator==(const call&) const = default;
};

std::string describe(const std::vector<call>& calls) {
  std::string out;
  for (const auto& c : calls) out += std::to_string(c.stage) + (c.failed ? "!" : ":") + std::to_string(c.value) + ' ';
  return out;
}

// How an operation on a deferred ended.
enum class outcome_kind { ok, already_called, logic_error, other };

enum class stage_kind { on_value, on_failure, both, chain };

constexpr int cancelled_code = -1;
int code_of(const failure& f) {
  if (const test_error* e = f.get<test_error>()) return e->value;
  if (f.check<cancelled_error>()) return cancelled_code;
  disagree("a stage received an unexpected failure", f.what());
}

int mix(int x, int k) { return (x * 7 + k) % 1000; }

struct dmodel {
  struct stage {
    int id;
    stage_kind kind;
    int k;
    int inner;  // stage_kind::chain: the deferred it returns
  };
  struct chain {
    bool called = false;
    bool failed = false;
    int value = 0;
    int pauses = 0;
    int waiting = -1;     // the inner deferred this chain waits on
    int handed_to = -1;   // the outer deferred this one's result goes to
    bool handed_over = false;  // its result went to handed_to
    bool swallow = false;      // cancelled without a canceller: the next fire is ignored
    std::deque<stage> stages;
  };
  std::vector<chain> chains;
  std::vector<call> log;

  bool has_result(int i) const {
    const chain& c = chains[static_cast<std::size_t>(i)];
    return c.called && c.pauses == 0 && c.waiting < 0 && c.handed_to < 0;
  }

  void run(int i) {
    chain& c = chains[static_cast<std::size_t>(i)];
    while (c.called && c.pauses == 0 && c.waiting < 0 && !c.stages.empty()) {
      const stage s = c.stages.front();
      c.stages.pop_front();
      switch (s.kind) {
        case stage_kind::on_value:
          if (c.failed) break;
          log.push_back({s.id, false, c.value});
          if (s.k % 4 == 0) {
            c.failed = true;
            c.value = c.value + 1000;
          } else {
            c.value = mix(c.value, s.k);
          }
          break;
        case stage_kind::on_failure:
          if (!c.failed) break;
          log.push_back({s.id, true, c.value});
          if (s.k % 2) {
            c.failed = false;
            c.value = mix(c.value + 2000, s.k);
          } else {
            c.value = c.value + 3000;
          }
          break;
        case stage_kind::both:
          log.push_back({s.id, c.failed, c.value});
          c.value = c.failed ? mix(c.value + 4000, s.k) : mix(c.value, s.k + 1);
          c.failed = false;
          break;
        case stage_kind::chain: {
          if (c.failed) break;
          log.push_back({s.id, false, c.value});
          c.waiting = s.inner;
          chains[static_cast<std::size_t>(s.inner)].handed_to = i;
          run(s.inner);  // hands its result over at once if it has one
          break;
        }
      }
    }
    if (c.called && c.pauses == 0 && c.waiting < 0 && c.stages.empty() && c.handed_to >= 0 && !c.handed_over) {
      c.handed_over = true;
      chain& o = chains[static_cast<std::size_t>(c.handed_to)];
      o.waiting = -1;
      o.failed = c.failed;
      o.value = c.value;
      run(c.handed_to);
    }
  }

  outcome_kind fire(int i, bool failed, int value) {
    chain& c = chains[static_cast<std::size_t>(i)];
    if (c.called) {
      if (c.swallow) {
        c.swallow = false;
        return outcome_kind::ok;
      }
      return outcome_kind::already_called;
    }
    c.called = true;
    c.failed = failed;
    c.value = value;
    run(i);
    return outcome_kind::ok;
  }

  void cancel(int i) {
    chain& c = chains[static_cast<std::size_t>(i)];
    if (!c.called) {
      fire(i, true, cancelled_code);
      c.swallow = true;
      return;
    }
    if (c.waiting >= 0) cancel(c.waiting);
  }

  outcome_kind add(int i, stage s) {
    chain& c = chains[static_cast<std::size_t>(i)];
    if (c.handed_to >= 0) return outcome_kind::logic_error;
    c.stages.push_back(s);
    run(i);
    return outcome_kind::ok;
  }
};

struct dworld {
  std::vector<deferred<int>> ds;
  std::vector<call> log;

  template <class F>
  static outcome_kind guard(F&& f) {
    try {
      f();
      return outcome_kind::ok;
    } catch (const already_called_error&) {
      return outcome_kind::already_called;
    } catch (const std::logic_error&) {
      return outcome_kind::logic_error;
    } catch (...) {
      return outcome_kind::other;
    }
  }

  outcome_kind add(int i, const dmodel::stage& s) {
    deferred<int>& d = ds[static_cast<std::size_t>(i)];
    const int id = s.id;
    const int k = s.k;
    std::vector<call>* out = &log;
    return guard([&] {
      switch (s.kind) {
        case stage_kind::on_value:
          d.add_callback([out, id, k](int x) -> int {
            out->push_back({id, false, x});
            if (k % 4 == 0) throw test_error(x + 1000);
            return mix(x, k);
          });
          break;
        case stage_kind::on_failure:
          d.add_errback([out, id, k](const failure& f) -> int {
            const int code = code_of(f);
            out->push_back({id, true, code});
            if (k % 2) return mix(code + 2000, k);
            throw test_error(code + 3000);
          });
          break;
        case stage_kind::both:
          d.add_callbacks([out, id, k](int x) -> int {
                            out->push_back({id, false, x});
                            return mix(x, k + 1);
                          },
                          [out, id, k](const failure& f) -> int {
                            const int code = code_of(f);
                            out->push_back({id, true, code});
                            return mix(code + 4000, k);
                          });
          break;
        case stage_kind::chain: {
          deferred<int> inner = ds[static_cast<std::size_t>(s.inner)];
          d.add_callback([out, id, inner](int x) -> deferred<int> {
            out->push_back({id, false, x});
            return inner;
          });
          break;
        }
      }
    });
  }
};

// ---- the program ----------------------------------------------------------------------------

void run_program(input& in) {
  world w;
  model m;
  dworld dw;
  dmodel dm;
  for (int i = 0; i < actor_count; ++i) w.actors[static_cast<std::size_t>(i)] = w.make_actor(i);
  int next_value = 1;
  int next_stage = 1;
  constexpr int deferred_limit = 64;

  // The deferreds an operation may name: the last few made.
  auto pick_deferred = [&]() -> int {
    const int n = static_cast<int>(dw.ds.size());
    if (n == 0) return -1;
    return n - 1 - in.pick(n < 6 ? n : 6);
  };
  auto new_deferred = [&]() {
    dw.ds.emplace_back();
    dm.chains.emplace_back();
    return static_cast<int>(dw.ds.size()) - 1;
  };

  while (in.more()) {
    w.log.clear();
    std::vector<event> expected;
    const int roll = in.byte();
    std::string what = "op " + std::to_string(roll) + " at byte " + std::to_string(in.pos);

    if (roll < 70) {
      // An actor that is not blocked performs a channel operation or yields.
      const int a = in.pick(actor_count);
      if (m.blocked[static_cast<std::size_t>(a)]) continue;
      command c;
      c.ch = in.pick(channel_count);
      c.value = next_value++;
      const int kind = in.pick(10);
      c.what = kind < 4 ? op::send : kind < 5 ? op::send_exception : kind < 9 ? op::receive : op::yield;
      w.commands[static_cast<std::size_t>(a)] = c;
      m.started[static_cast<std::size_t>(a)] = true;
      if (c.what == op::yield) {
        expected = {{'Y', a, 0}};
      } else {
        bool queued = false;
        const int dir = c.what == op::receive ? -1 : 1;
        expected = m.act(a, c.ch, dir, c.what == op::send_exception ? model::payload::error : model::payload::value,
                         c.value, queued);
      }
      w.actors[static_cast<std::size_t>(a)].run();
    } else if (roll < 80) {
      // The driver (main) sends or receives, only when a partner waits: it must not block.
      const int ch = in.pick(channel_count);
      const int b = m.channels[static_cast<std::size_t>(ch)].balance();
      if (b == 0) continue;
      bool queued = false;
      if (b > 0) {
        expected = m.act(-1, ch, -1, model::payload::value, 0, queued);
        try {
          w.log.push_back({'r', -1, w.channels[static_cast<std::size_t>(ch)].receive()});
        } catch (const test_error& e) {
          w.log.push_back({'e', -1, e.value});
        }
      } else {
        const bool exception = in.pick(4) == 0;
        const int v = next_value++;
        expected = m.act(-1, ch, +1, exception ? model::payload::error : model::payload::value, v, queued);
        if (exception)
          w.channels[static_cast<std::size_t>(ch)].send_exception(std::make_exception_ptr(test_error(v)));
        else
          w.channels[static_cast<std::size_t>(ch)].send(v);
        w.log.push_back({'s', -1, v});
      }
      expect(!queued, "the driver would block", what);
    } else if (roll < 88) {
      // Kill an actor whatever its state, or drop its handle, and put a fresh one in its place.
      const int a = in.pick(actor_count);
      const int how = in.pick(3);
      auto& t = w.actors[static_cast<std::size_t>(a)];
      if (how == 2) {
        // Dropping the last handle: a paused, started actor is killed (pending), one that never
        // started is discarded; a blocked one stays owned by the scheduler, so keep it.
        if (m.blocked[static_cast<std::size_t>(a)]) continue;
        if (m.started[static_cast<std::size_t>(a)]) expected = {{'K', a, 0}};
        t = w.make_actor(a);
      } else {
        const bool pending = how == 1;
        m.unblock(a);
        if (m.started[static_cast<std::size_t>(a)]) expected = {{'K', a, 0}};
        t.kill(pending);
        if (!pending) expect(w.log == expected, "kill", what + "\nexpected " + describe(expected) + "\nactual " + describe(w.log));
        expect(t.alive() == pending, "alive after kill", what);
        t = w.make_actor(a);
      }
      m.started[static_cast<std::size_t>(a)] = false;
    } else if (roll < 94) {
      // Throw into a blocked actor: it leaves its channel.
      const int a = in.pick(actor_count);
      if (!m.blocked[static_cast<std::size_t>(a)]) continue;
      const bool pending = in.pick(2) == 0;
      m.unblock(a);
      expected = {{'I', a, 0}};
      w.actors[static_cast<std::size_t>(a)].throw_exception(std::make_exception_ptr(interrupt_error()), pending);
      if (pending) expect(w.log.empty(), "a pending throw ran at once", what);
    } else if (roll < 100) {
      const int ch = in.pick(channel_count);
      const int p = in.pick(3) - 1;
      m.channels[static_cast<std::size_t>(ch)].preference = p;
      w.channels[static_cast<std::size_t>(ch)].set_preference(p);
    } else if (roll < 108) {
      const int ch = in.pick(channel_count);
      const int how = in.pick(4);
      auto& mc = m.channels[static_cast<std::size_t>(ch)];
      auto& rc = w.channels[static_cast<std::size_t>(ch)];
      if (how == 0) {
        mc.closing = false;
        rc.open();
      } else if (how < 3) {
        mc.closing = true;
        rc.close();
      } else {
        // stop(): close, then every waiting receiver gets channel_closed_error.
        mc.closing = true;
        std::size_t woken = 0;
        while (mc.balance() < 0) {
          bool queued = false;
          for (const auto& e : m.act(-1, ch, +1, model::payload::closed, 0, queued, true)) expected.push_back(e);
          ++woken;
        }
        const std::size_t real = rc.stop();
        expect(real == woken, "channel::stop's count", what);
      }
    } else if (roll < 116) {
      // A new deferred.
      if (static_cast<int>(dw.ds.size()) >= deferred_limit) continue;
      new_deferred();
    } else if (roll < 176) {
      // A stage on a deferred: on value, on failure, both, or a chain onto a new inner deferred.
      const int d = pick_deferred();
      if (d < 0) continue;
      dmodel::stage s{next_stage++, static_cast<stage_kind>(in.pick(4)), in.pick(16), -1};
      if (s.kind == stage_kind::chain) {
        if (static_cast<int>(dw.ds.size()) >= deferred_limit) continue;
        s.inner = new_deferred();
      }
      const outcome_kind want = dm.add(d, s);
      const outcome_kind got = dw.add(d, s);
      expect(got == want, "adding a stage", what);
    } else if (roll < 206) {
      // callback() or errback().
      const int d = pick_deferred();
      if (d < 0) continue;
      const bool failed = in.pick(3) == 0;
      const int v = in.byte();
      const outcome_kind want = dm.fire(d, failed, v);
      deferred<int>& rd = dw.ds[static_cast<std::size_t>(d)];
      const outcome_kind got = dworld::guard([&] {
        if (failed)
          rd.errback(std::make_exception_ptr(test_error(v)));
        else
          rd.callback(v);
      });
      expect(got == want, "firing a deferred", what);
    } else if (roll < 220) {
      const int d = pick_deferred();
      if (d < 0) continue;
      dm.cancel(d);
      expect(dworld::guard([&] { dw.ds[static_cast<std::size_t>(d)].cancel(); }) == outcome_kind::ok, "cancel threw",
             what);
    } else if (roll < 240) {
      // pause() or unpause(), on a deferred that is not an inner one already handed over.
      const int d = pick_deferred();
      if (d < 0 || dm.chains[static_cast<std::size_t>(d)].handed_to >= 0) continue;
      auto& c = dm.chains[static_cast<std::size_t>(d)];
      deferred<int>& rd = dw.ds[static_cast<std::size_t>(d)];
      if (in.pick(2) == 0) {
        ++c.pauses;
        expect(dworld::guard([&] { rd.pause(); }) == outcome_kind::ok, "pause threw", what);
      } else {
        const outcome_kind want = c.pauses == 0 ? outcome_kind::logic_error : outcome_kind::ok;
        if (c.pauses > 0) {
          --c.pauses;
          dm.run(d);
        }
        expect(dworld::guard([&] { rd.unpause(); }) == want, "unpause", what);
      }
    } else {
      // Nothing: lets the remaining bytes' alignment to operations shift.
      continue;
    }

    w.settle();
    expect(w.log == expected, "channel and tasklet events",
           what + "\nexpected " + describe(expected) + "\nactual   " + describe(w.log));
    expect(getruncount() == 1, "tasklets left runnable", what);
    for (int c = 0; c < channel_count; ++c) {
      const auto& rc = w.channels[static_cast<std::size_t>(c)];
      const auto& mc = m.channels[static_cast<std::size_t>(c)];
      expect(rc.balance() == mc.balance(), "channel balance", what + " channel " + std::to_string(c));
      expect(rc.closing() == mc.closing, "channel closing", what);
      expect(rc.closed() == (mc.closing && mc.balance() == 0), "channel closed", what);
    }
    for (int a = 0; a < actor_count; ++a) {
      expect(w.actors[static_cast<std::size_t>(a)].alive(), "actor alive", what + " actor " + std::to_string(a));
      expect(w.actors[static_cast<std::size_t>(a)].blocked() == m.blocked[static_cast<std::size_t>(a)], "actor blocked",
             what + " actor " + std::to_string(a));
    }
    expect(dw.log == dm.log, "deferred stage calls",
           what + "\nexpected " + describe(dm.log) + "\nactual   " + describe(dw.log));
    for (std::size_t i = 0; i < dw.ds.size(); ++i) {
      const auto& c = dm.chains[i];
      expect(dw.ds[i].called() == c.called, "deferred called()", what + " deferred " + std::to_string(i));
      expect(dw.ds[i].paused() == (c.pauses > 0 || c.waiting >= 0), "deferred paused()",
             what + " deferred " + std::to_string(i));
      expect(dw.ds[i].has_result() == dm.has_result(static_cast<int>(i)), "deferred has_result()",
             what + " deferred " + std::to_string(i));
    }
  }

  // Leave nothing behind for the next input: every actor ends, every chain is consumed.
  for (auto& t : w.actors) t.kill();
  w.settle();
  expect(getruncount() == 1, "tasklets left at the end");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Failures left unconsumed in a chain are reported when the chain goes; they are expected
  // here (a program may well end with an unhandled errback), so the report is silenced.
  static const bool quiet = [] {
    set_unhandled_error_handler([](const failure&) {});
    return true;
  }();
  (void)quiet;
  input in{data, size};
  run_program(in);
  return 0;
}
