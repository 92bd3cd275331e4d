// Shared helpers for the reactor and bridge tests.
#pragma once

#include <twistlet/deferred.hpp>
#include <twistlet/tasklet.hpp>

#include <sys/resource.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace twistlet_test {

// An exception type of our own, with a payload, so that a test can tell it from anything the
// framework throws and check that it arrives intact.
struct test_error : std::runtime_error {
  explicit test_error(int v) : std::runtime_error("test_error " + std::to_string(v)), value(v) {}
  int value;
};

// The ordered record of what happened; most rules here are about order.
using event_log = std::vector<std::string>;

// Captures every unhandled-error report while it lives, instead of letting them reach stderr.
class error_log {
 public:
  error_log() {
    old_ = twistlet::set_unhandled_error_handler([this](const twistlet::failure& f) { messages.push_back(f.what()); });
  }
  ~error_log() { twistlet::set_unhandled_error_handler(std::move(old_)); }
  error_log(const error_log&) = delete;
  error_log& operator=(const error_log&) = delete;

  std::vector<std::string> messages;

 private:
  twistlet::unhandled_error_handler old_;
};

// Kills, at the end of a test, the tasklets it registered that are still alive, so that a
// failing test cannot leave blocked tasklets (holding references to its locals) behind for the
// next one. Declare it after what those tasklets use, so that it runs first.
class reaper {
 public:
  reaper() = default;
  reaper(const reaper&) = delete;
  reaper& operator=(const reaper&) = delete;
  ~reaper() {
    for (auto& t : tasklets_) {
      try {
        if (t.alive()) t.kill();
      } catch (...) {
      }
    }
    try {
      twistlet::run();
    } catch (...) {
    }
  }
  twistlet::tasklet add(twistlet::tasklet t) {
    tasklets_.push_back(t);
    return t;
  }
  template <class F>
  twistlet::tasklet spawn(F&& f, twistlet::tasklet_options opts = {}) {
    return add(twistlet::tasklet::spawn(std::forward<F>(f), std::move(opts)));
  }

 private:
  std::vector<twistlet::tasklet> tasklets_;
};

// CPU time (user + system) and voluntary context switches, of the process or of the calling
// thread: what an idle reactor must not spend.
struct cpu_usage {
  std::chrono::microseconds cpu{};
  long voluntary_switches = 0;

  static cpu_usage of(int who) {
    rusage u{};
    getrusage(who, &u);
    cpu_usage r;
    r.cpu = std::chrono::seconds(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
            std::chrono::microseconds(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
    r.voluntary_switches = u.ru_nvcsw;
    return r;
  }
  friend cpu_usage operator-(const cpu_usage& a, const cpu_usage& b) {
    return {a.cpu - b.cpu, a.voluntary_switches - b.voluntary_switches};
  }
};

}  // namespace twistlet_test
