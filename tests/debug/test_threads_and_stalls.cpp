// Dumps across threads (directly and on a signal) and the stall detector.
#include <twistlet/twistlet.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace twistlet;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A second thread with a running reactor and a tasklet blocked on a named channel.
class reactor_thread {
 public:
  explicit reactor_thread(std::string channel_name) {
    auto ready = started_.get_future();
    thread_ = std::thread([this, name = std::move(channel_name)] {
      reactor r;
      channel<int> ch(name);
      tasklet waiter = tasklet::spawn([&] { ch.receive(); }, {.name = "far-" + name});
      r.call_later(0ns, [&] { started_.set_value(&r); });
      r.run();
      waiter.kill();
    });
    reactor_ = ready.get();
  }
  ~reactor_thread() {
    reactor_->call_from_thread([r = reactor_] { r->stop(); });
    thread_.join();
  }
  reactor_thread(const reactor_thread&) = delete;
  reactor_thread& operator=(const reactor_thread&) = delete;

 private:
  std::promise<reactor*> started_;
  std::thread thread_;
  reactor* reactor_ = nullptr;
};

// A thread that has a scheduler but no reactor, waiting on a condition variable.
[[gnu::noinline]] void debug_test_plain_wait(std::mutex& m, std::condition_variable& cv, bool& entered, bool& done) {
  std::unique_lock l(m);
  entered = true;
  cv.notify_all();
  cv.wait(l, [&] { return done; });
  asm volatile("" ::: "memory");
}

// Sends file descriptor 2 to a temporary file for the object's lifetime.
class stderr_capture {
 public:
  stderr_capture() {
    char path[] = "/tmp/twistlet_debug_stderr_XXXXXX";
    fd_ = ::mkstemp(path);
    REQUIRE(fd_ >= 0);
    path_ = path;
    std::fflush(stderr);
    saved_ = ::dup(2);
    ::dup2(fd_, 2);
  }
  ~stderr_capture() {
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  stderr_capture(const stderr_capture&) = delete;
  stderr_capture& operator=(const stderr_capture&) = delete;
  std::string text() const {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  int fd_ = -1;
  int saved_ = -1;
  std::string path_;
};

[[gnu::noinline]] void debug_test_busy_loop(const std::atomic<bool>& until) {
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  // Short sleeps are not yields: the scheduler sees one tasklet running all along. (They let
  // sanitizers that deliver signals at system calls deliver the capture signal.)
  while (!until.load() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(100us);
  asm volatile("" ::: "memory");
}

}  // namespace

TEST_CASE("dump_all_threads: this thread, a reactor thread, and a thread without a reactor", "[debug]") {
  reactor_thread far("far-jobs");
  std::mutex m;
  std::condition_variable cv;
  bool entered = false;
  bool done = false;
  std::thread plain([&] {
    (void)getcurrent();  // makes this thread's scheduler
    debug_test_plain_wait(m, cv, entered, done);
  });
  {
    // Once we hold the mutex after `entered`, the thread has released it by waiting.
    std::unique_lock l(m);
    cv.wait(l, [&] { return entered; });
  }

  channel<int> here("near-jobs");
  tasklet t = tasklet::spawn([&] { here.receive(); }, {.name = "near"});
  schedule();
  std::ostringstream os;
  debug::dump_all_threads(os);
  const std::string text = os.str();
  INFO(text);
  CHECK(contains(text, "twistlet: tasklets of "));
  CHECK(contains(text, "'near': blocked on receive on channel 'near-jobs' (balance -1)"));
  CHECK(contains(text, "'far-far-jobs': blocked on receive on channel 'far-jobs' (balance -1)"));
  CHECK(contains(text, "'reactor': running"));
  CHECK(contains(text, "no reactor is running there; it is running its main tasklet"));
  CHECK(contains(text, "debug_test_plain_wait"));
  {
    std::lock_guard l(m);
    done = true;
  }
  cv.notify_all();
  plain.join();
  t.kill();
}

TEST_CASE("dump signal: SIGUSR1 writes every thread's tasklets to stderr", "[debug]") {
  CHECK_THROWS_AS(debug::install_dump_signal(SIGKILL), std::invalid_argument);
  reactor_thread far("far-signal");
  reactor r;
  channel<int> here("near-signal");
  tasklet t = tasklet::spawn([&] { here.receive(); }, {.name = "near"});
  std::string text;
  {
    stderr_capture capture;
    debug::install_dump_signal(SIGUSR1);
    tasklet::spawn(
        [&] {
          std::raise(SIGUSR1);
          // The dump is written by another thread; wait for it, but never forever.
          for (int i = 0; i < 2000 && !contains(capture.text(), "far-signal"); ++i) twistlet::sleep(5ms);
          text = capture.text();
          r.stop();
        },
        {.name = "trigger"});
    r.run();
    debug::remove_dump_signal();
  }
  INFO(text);
  CHECK(contains(text, "twistlet: tasklets of "));
  CHECK(contains(text, "'near': blocked on receive on channel 'near-signal' (balance -1)"));
  CHECK(contains(text, "'trigger': blocked on a deferred (block_on) [sleep, due in "));
  CHECK(contains(text, "'far-far-signal': blocked on receive on channel 'far-signal' (balance -1)"));
  t.kill();
}

TEST_CASE("stall detector: a tasklet that runs past the threshold is reported by name", "[debug]") {
  std::mutex m;
  std::vector<stall_report> reports;
  std::atomic<bool> reported{false};
  reactor_options opts;
  opts.stall_threshold = 20ms;
  opts.on_stall = [&](const stall_report& r) {
    std::lock_guard l(m);
    // Only the hog's: a thread preempted by a busy machine can stall anywhere.
    if (r.tasklet_name != "hog") return;
    reports.push_back(r);
    reported = true;
  };
  reactor r(opts);
  tasklet hog = tasklet::spawn(
      [&] {
        debug_test_busy_loop(reported);
        r.stop();
      },
      {.name = "hog"});
  r.run();
  std::lock_guard l(m);
  REQUIRE(reported);
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].tasklet_id == hog.id());
  CHECK(reports[0].tasklet_name == "hog");
  CHECK(reports[0].running_for >= 20ms);
  INFO(reports[0].backtrace);
  CHECK(contains(reports[0].backtrace, "debug_test_busy_loop"));
}

TEST_CASE("stall detector: a slow callback is reported as the reactor tasklet", "[debug]") {
  std::atomic<bool> reported{false};
  std::string name;
  reactor_options opts;
  opts.stall_threshold = 20ms;
  opts.on_stall = [&](const stall_report& rep) {
    if (!reported) name = rep.tasklet_name;
    reported = true;
  };
  reactor r(opts);
  r.call_later(0ns, [&] {
    debug_test_busy_loop(reported);
    r.stop();
  });
  r.run();
  REQUIRE(reported);
  CHECK(name == "reactor");
}

TEST_CASE("stall detector: an idle reactor and a yielding tasklet are not reported", "[debug]") {
  std::atomic<int> count{0};
  reactor_options opts;
  // Generous: the test must not fail when the machine preempts the thread for a while.
  opts.stall_threshold = 200ms;
  opts.on_stall = [&](const stall_report&) { ++count; };
  reactor r(opts);
  // Yields often while running for well over the threshold, then the reactor idles.
  tasklet::spawn(
      [&] {
        const auto end = std::chrono::steady_clock::now() + 500ms;
        while (std::chrono::steady_clock::now() < end) schedule();
        twistlet::sleep(400ms);
        r.stop();
      },
      {.name = "polite"});
  r.run();
  CHECK(count == 0);
}

TEST_CASE("stall detector: the default sink writes to stderr", "[debug]") {
  std::atomic<bool> done{false};
  std::string text;
  {
    stderr_capture capture;
    reactor_options opts;
    opts.stall_threshold = 20ms;
    reactor r(opts);
    tasklet::spawn(
        [&] {
          const auto give_up = std::chrono::steady_clock::now() + 20s;
          while (!contains(capture.text(), "without yielding") && std::chrono::steady_clock::now() < give_up)
            std::this_thread::sleep_for(1ms);
          r.stop();
        },
        {.name = "stderr-hog"});
    r.run();
    text = capture.text();
  }
  INFO(text);
  CHECK(contains(text, "twistlet: stall: tasklet "));
  CHECK(contains(text, "'stderr-hog' has run for "));
  CHECK(contains(text, "ms without yielding (threshold 20 ms)"));
}
