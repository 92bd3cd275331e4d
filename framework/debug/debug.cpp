#include <twistlet/debug.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/scheduler.hpp"

namespace twistlet::debug {

namespace {

using detail::scheduler;
using detail::tasklet_impl;
using detail::tstate;

tasklet_state state_of(const scheduler& s, const tasklet_impl* t) noexcept {
  if (t == s.current()) return tasklet_state::running;
  switch (t->state) {
    case tstate::runnable:
      return tasklet_state::runnable;
    case tstate::blocked:
      return tasklet_state::blocked;
    default:
      return t->watchdog ? tasklet_state::watching : tasklet_state::paused;
  }
}

// Source paths are as the compiler was given them (often absolute); the file name is what a
// reader needs, and it keeps listings the same from one checkout to the next.
std::string_view base_name(const char* path) {
  std::string_view p(path ? path : "");
  if (const auto slash = p.find_last_of('/'); slash != std::string_view::npos) p.remove_prefix(slash + 1);
  return p;
}

std::string frames_text(scheduler& s, tasklet_impl* t, std::size_t max, const char* indent) {
  if (max == 0) return {};
  std::vector<void*> frames(max);
  const char* why = nullptr;
  const std::size_t n = s.backtrace_of(t, frames.data(), max, &why);
  if (n == 0) return std::string(indent) + "(no backtrace: " + (why ? why : "no frames found") + ")\n";
  return detail::format_frames(frames.data(), n, indent);
}

std::vector<tasklet_impl*> live_tasklets(const scheduler& s) {
  std::vector<tasklet_impl*> all;
  for (tasklet_impl* t = s.first_live(); t; t = t->all_next)
    if (t->state != tstate::dead) all.push_back(t);
  // The list runs newest first; the main tasklet, made with the scheduler, ends it.
  std::reverse(all.begin(), all.end());
  return all;
}

std::string thread_listing(const list_options& opts) {
  scheduler& s = scheduler::get();
  std::ostringstream os;
  os << "thread " << s.tid() << ":\n";
  dump_tasklets(os, opts);
  return os.str();
}

}  // namespace

const char* to_string(tasklet_state s) noexcept {
  switch (s) {
    case tasklet_state::running:
      return "running";
    case tasklet_state::runnable:
      return "runnable";
    case tasklet_state::blocked:
      return "blocked";
    case tasklet_state::watching:
      return "watching";
    case tasklet_state::paused:
      return "paused";
  }
  return "?";
}

std::vector<tasklet_info> list_tasklets(const list_options& opts) {
  scheduler& s = scheduler::get();
  std::vector<tasklet_info> out;
  for (tasklet_impl* t : live_tasklets(s)) {
    tasklet_info info;
    info.id = t->id;
    info.name = t->name;
    info.state = state_of(s, t);
    info.is_main = t->main;
    info.started = t->started;
    info.created_at = t->created_at;
    info.waits_on = detail::describe_wait(t);
    if (info.state == tasklet_state::watching && info.waits_on.empty())
      info.waits_on = "in run(), until the tasklets it runs are done";
    out.push_back(std::move(info));
    // Taken after the fields above: nothing runs meanwhile, but the text is the slow part.
    if (opts.backtraces) out.back().backtrace = frames_text(s, t, opts.max_frames, "");
  }
  return out;
}

std::string describe(const tasklet_info& t) {
  std::string s = "tasklet " + std::to_string(t.id);
  if (!t.name.empty()) s += " '" + t.name + "'";
  if (t.is_main) s += " (main)";
  s += ": ";
  s += to_string(t.state);
  if (!t.started && t.state != tasklet_state::running) s += ", not started";
  if (!t.waits_on.empty()) {
    s += t.state == tasklet_state::blocked ? " on " : " ";
    s += t.waits_on;
  }
  if (t.created_at.file_name() && *t.created_at.file_name()) {
    s += "; created at ";
    s += base_name(t.created_at.file_name());
    s += ':';
    s += std::to_string(t.created_at.line());
  }
  return s;
}

void dump_tasklets(std::ostream& os, const list_options& opts) {
  const std::vector<tasklet_info> all = list_tasklets(opts);
  os << all.size() << (all.size() == 1 ? " tasklet" : " tasklets") << ":\n";
  for (const tasklet_info& t : all) {
    os << "  " << describe(t) << '\n';
    if (!t.backtrace.empty()) {
      std::istringstream lines(t.backtrace);
      for (std::string line; std::getline(lines, line);) os << "    " << line << '\n';
    }
  }
}

std::string backtrace(const tasklet& t, std::size_t max_frames) {
  if (!t) return "(no backtrace: an empty handle)\n";
  scheduler& s = scheduler::get();
  return frames_text(s, t.impl(), max_frames, "");
}

// ---- every thread ---------------------------------------------------------------------------

namespace {

// Answers from other threads; shared with the calls posted to them, which may run after the
// dumper has given up waiting.
struct answers {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::optional<std::string>> texts;
};

std::string capture_text(const detail::thread_capture& c, pid_t tid, const char* why) {
  std::string s = "thread " + std::to_string(tid) + ": ";
  s += why;
  if (c.has_tasklet) {
    s += "; it is running ";
    if (c.main) {
      s += "its main tasklet (" + std::to_string(c.tasklet_id) + ")";
    } else {
      s += "tasklet " + std::to_string(c.tasklet_id);
      if (c.name_len) s += " '" + std::string(c.name, c.name_len) + "'";
    }
  }
  s += ":\n";
  s += detail::format_frames(c.frames, c.depth, "    ");
  return s;
}

}  // namespace

void dump_all_threads(std::ostream& os, const list_options& opts, std::chrono::milliseconds timeout) {
  struct entry {
    std::uint64_t serial = 0;
    pid_t tid = 0;
    bool self = false;
    bool posted = false;
    std::string text{};
  };
  std::vector<entry> entries;
  auto shared = std::make_shared<answers>();
  scheduler* const me = scheduler::peek();
  {
    auto lock = detail::lock_registry();
    const auto& all = detail::registered_schedulers();
    shared->texts.resize(all.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
      scheduler* s = all[i];
      entry e;
      e.serial = s->serial();
      e.tid = s->tid();
      if (s == me) {
        e.self = true;
      } else {
        e.posted = s->post_remote([shared, i, opts] {
          std::string text = thread_listing(opts);
          std::lock_guard l(shared->m);
          shared->texts[i] = std::move(text);
          shared->cv.notify_all();
        });
        if (!e.posted) {
          detail::thread_capture cap;
          e.text = detail::capture_thread(*s, cap, timeout)
                       ? capture_text(cap, s->tid(), "no reactor is running there")
                       : "thread " + std::to_string(s->tid()) + ": no reactor is running there, and it did not answer "
                                                                "the capture signal\n";
        }
      }
      entries.push_back(std::move(e));
    }
  }
  for (entry& e : entries)
    if (e.self) e.text = thread_listing(opts);
  {
    std::unique_lock l(shared->m);
    shared->cv.wait_for(l, timeout, [&] {
      for (std::size_t i = 0; i < entries.size(); ++i)
        if (entries[i].posted && !shared->texts[i]) return false;
      return true;
    });
    for (std::size_t i = 0; i < entries.size(); ++i)
      if (entries[i].posted && shared->texts[i]) {
        entries[i].text = std::move(*shared->texts[i]);
        entries[i].posted = false;
      }
  }
  // A thread whose reactor did not get to the request is stuck in something that does not
  // yield: show what it runs instead.
  if (std::any_of(entries.begin(), entries.end(), [](const entry& e) { return e.posted; })) {
    auto lock = detail::lock_registry();
    for (entry& e : entries) {
      if (!e.posted) continue;
      e.text = "thread " + std::to_string(e.tid) + ": did not answer (it has ended)\n";
      for (scheduler* s : detail::registered_schedulers()) {
        if (s->serial() != e.serial) continue;
        detail::thread_capture cap;
        e.text = detail::capture_thread(*s, cap, timeout)
                     ? capture_text(cap, e.tid, "its reactor did not answer (busy without yielding?)")
                     : "thread " + std::to_string(e.tid) + ": its reactor did not answer, nor the capture signal\n";
      }
    }
  }
  os << "twistlet: tasklets of " << entries.size() << (entries.size() == 1 ? " thread" : " threads") << '\n';
  for (const entry& e : entries) os << e.text;
}

// ---- the dump signal ------------------------------------------------------------------------

namespace {

struct dump_signal_state {
  std::mutex m;
  list_options opts;
  int signo = 0;
  int pipe_read = -1;
  int pipe_write = -1;
  bool thread_started = false;
};

dump_signal_state& dump_state() {
  // Never destroyed: the dumper thread may still run during static destruction.
  static auto* s = new dump_signal_state;
  return *s;
}

std::atomic<int> g_dump_pipe_write{-1};

void on_dump_signal(int) {
  const int saved_errno = errno;
  const int fd = g_dump_pipe_write.load(std::memory_order_relaxed);
  if (fd >= 0) {
    const char c = 1;
    [[maybe_unused]] const ssize_t n = ::write(fd, &c, 1);  // a full pipe already has a dump coming
  }
  errno = saved_errno;
}

void write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

void dumper_main(int fd) {
  for (;;) {
    char buf[64];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    list_options opts;
    {
      dump_signal_state& st = dump_state();
      std::lock_guard l(st.m);
      opts = st.opts;
    }
    std::ostringstream os;
    dump_all_threads(os, opts);
    write_all(STDERR_FILENO, os.str());
  }
}

}  // namespace

void install_dump_signal(int signo, const list_options& opts) {
  if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP || signo == detail::capture_signal())
    throw std::invalid_argument("debug::install_dump_signal: signal " + std::to_string(signo) + " cannot be used");
  dump_signal_state& st = dump_state();
  std::lock_guard l(st.m);
  st.opts = opts;
  if (!st.thread_started) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("debug::install_dump_signal: pipe2 failed");
    // A burst of signals must not block the handler: extra bytes are dropped.
    ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    st.pipe_read = fds[0];
    st.pipe_write = fds[1];
    g_dump_pipe_write.store(fds[1], std::memory_order_relaxed);
    // The dumper thread takes no signals, so that process-wide ones go to threads that
    // expect them; it starts with every signal blocked.
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
      std::thread(dumper_main, fds[0]).detach();
    } catch (...) {
      ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
      throw;
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    st.thread_started = true;
  }
  if (st.signo != 0 && st.signo != signo) ::signal(st.signo, SIG_DFL);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_dump_signal;
  sa.sa_flags = SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(signo, &sa, nullptr) != 0)
    throw std::invalid_argument("debug::install_dump_signal: sigaction failed for signal " + std::to_string(signo));
  st.signo = signo;
}

void remove_dump_signal() {
  dump_signal_state& st = dump_state();
  std::lock_guard l(st.m);
  if (st.signo == 0) return;
  ::signal(st.signo, SIG_DFL);
  st.signo = 0;
}

// ---- labels ---------------------------------------------------------------------------------

wait_label::wait_label(const char* text) {
  note_.text = text;
  detail::push_note(&note_);
}

wait_label::wait_label(std::string text) : owned_(std::move(text)) {
  note_.text = owned_.c_str();
  detail::push_note(&note_);
}

wait_label::~wait_label() { detail::pop_note(note_.outer); }

}  // namespace twistlet::debug
