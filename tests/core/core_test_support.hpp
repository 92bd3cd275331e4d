// Shared helpers for the core layer's tests.
#pragma once

#include <twistlet/channel.hpp>
#include <twistlet/tasklet.hpp>

#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace twistlet_test {

// How many tasklets the big-number tests keep alive at once. Sanitizer builds have stacks
// four times larger and much slower tasklet ends; ThreadSanitizer also counts every tasklet as
// a thread and allows only about 8,000 of those at a time.
#if defined(__SANITIZE_THREAD__)
inline constexpr int many_tasklets_cap = 4'000;
#elif defined(__SANITIZE_ADDRESS__)
inline constexpr int many_tasklets_cap = 100'000;
#else
inline constexpr int many_tasklets_cap = 1'000'000;
#endif
/// `n` tasklets, or fewer under sanitizers (`n_sanitized` under ASan, the cap under TSan).
inline constexpr int scaled(int n, [[maybe_unused]] int n_sanitized) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  n = n_sanitized;
#endif
  return n < many_tasklets_cap ? n : many_tasklets_cap;
}

// An exception type of our own, so that tests can tell it from anything the core throws.
struct test_error : std::runtime_error {
  explicit test_error(int v) : std::runtime_error("test_error " + std::to_string(v)), value(v) {}
  int value;
};

// The ordered record of what happened; most scheduling rules are about order.
using event_log = std::vector<std::string>;

// Kills, at the end of a test, every tasklet it registered that is still alive, so that a
// failing test cannot leave blocked tasklets (holding references to its locals) behind for the
// next one. Killing in order of registration; anything a dying tasklet throws is ignored.
class reaper {
 public:
  reaper() = default;
  reaper(const reaper&) = delete;
  reaper& operator=(const reaper&) = delete;
  ~reaper() {
    for (auto& t : tasklets_) {
      try {
        if (t.alive() && !t.is_main()) t.kill();
      } catch (...) {
      }
    }
    // Tasklets killed pending, or woken by the kills, still need a turn.
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
  template <class F>
  twistlet::tasklet make(F&& f, twistlet::tasklet_options opts = {}) {
    return add(twistlet::tasklet(std::forward<F>(f), std::move(opts)));
  }

 private:
  std::vector<twistlet::tasklet> tasklets_;
};

// Counts destructions; RAII objects inside tasklets use it to show their stack unwound.
struct dtor_counter {
  explicit dtor_counter(int& n) noexcept : count(&n) {}
  dtor_counter(const dtor_counter&) = delete;
  dtor_counter& operator=(const dtor_counter&) = delete;
  ~dtor_counter() { ++*count; }
  int* count;
};

// The message of the exception `e` holds, or a description of its type.
inline std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (const twistlet::tasklet_exit&) {
    return "tasklet_exit";
  } catch (...) {
    return "unknown";
  }
}

// Death tests and process-exit tests run in a fresh copy of this test program: a child
// re-executes /proc/self/exe with the name of one hidden test case (tagged [.child]), so the
// child starts with no scheduler, no stack pool and a clean environment of its own.
struct child_outcome {
  bool signaled = false;
  int signal = 0;
  int exit_code = -1;
  std::string out;  // the child's stdout (its Catch2 report included)
  std::string err;  // the child's stderr
};

inline child_outcome run_child_test(const char* test_name, const char* env_name = nullptr,
                                    const char* env_value = nullptr) {
  int out_pipe[2], err_pipe[2];
  REQUIRE(::pipe(out_pipe) == 0);
  REQUIRE(::pipe(err_pipe) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    // A child that ends in exit() or abort() leaves objects behind on purpose.
    std::string asan = std::getenv("ASAN_OPTIONS") ? std::getenv("ASAN_OPTIONS") : "";
    asan += asan.empty() ? "detect_leaks=0" : ":detect_leaks=0";
    ::setenv("ASAN_OPTIONS", asan.c_str(), 1);
    if (env_name) {
      if (env_value)
        ::setenv(env_name, env_value, 1);
      else
        ::unsetenv(env_name);
    }
    std::string name = test_name;
    char arg0[] = "test_core";
    char* argv[] = {arg0, name.data(), nullptr};
    ::execv("/proc/self/exe", argv);
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  child_outcome result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.signaled = WIFSIGNALED(status);
  if (result.signaled) result.signal = WTERMSIG(status);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

}  // namespace twistlet_test
