// Shared helpers for the reactor and bridge tests, on top of the core tests' (test_error,
// event_log, reaper).
#pragma once

#include "core/core_test_support.hpp"

#include <twistlet/deferred.hpp>
#include <twistlet/tasklet.hpp>

#include <sys/resource.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace twistlet_test {

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
