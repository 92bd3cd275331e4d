// twistlet debug layer: in-process introspection.
//
// Lists the tasklets of a thread with their state, where they were created and what they
// wait on (channel, deferred, timer, actor request, or a label of the program's own), with the
// backtrace of each suspended stack on request; dumps every thread's tasklets on a signal.
// Nothing here costs anything until it is called: what a tasklet waits on is recorded as a
// couple of pointers when it blocks and turned into text only by a listing.
#pragma once

#include <csignal>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <source_location>
#include <string>
#include <vector>

#include <twistlet/tasklet.hpp>

namespace twistlet::debug {

/// Where a tasklet stands, as a listing shows it.
enum class tasklet_state {
  running,   ///< the current tasklet of its thread (the one making the listing)
  runnable,  ///< in the run queue, waiting for its turn
  blocked,   ///< waiting on a channel, a deferred (block_on, sleep), ...
  watching,  ///< inside run(), waiting for the tasklets it runs (the watchdog)
  paused,    ///< alive but in no queue: nobody will run it until it is inserted
};

/// The lower-case name of `s` ("running", "blocked", ...).
const char* to_string(tasklet_state s) noexcept;

/// One tasklet of a listing.
struct tasklet_info {
  /// tasklet::id().
  std::uint64_t id = 0;
  /// tasklet::name().
  std::string name{};
  /// Where it stands.
  tasklet_state state = tasklet_state::paused;
  /// The thread's main tasklet.
  bool is_main = false;
  /// Its function has begun (false for a tasklet created and not yet run).
  bool started = false;
  /// tasklet_options::created_at (empty file name for a main tasklet).
  source_location created_at{};
  /// What it waits on ("receive on channel 'jobs' (balance -1)", "a deferred (block_on)"),
  /// followed by the innermost wait note in brackets ("[sleep, due in 5 s]"); empty if it
  /// waits on nothing.
  std::string waits_on{};
  /// The backtrace of its stack, one frame a line, innermost first (list_tasklets() with
  /// list_options::backtraces only); or why there is none, in parentheses.
  std::string backtrace{};
};

/// What a listing includes.
struct list_options {
  /// Also take the backtrace of every suspended stack (and of the caller's own). Taking one
  /// runs the unwinder on top of the tasklet's stack without resuming it; it needs a few
  /// kilobytes of free stack there (a tasklet too close to its limit is skipped, saying so).
  bool backtraces = false;
  /// At most this many frames per backtrace.
  std::size_t max_frames = 32;
};

/// Every live tasklet of the calling thread, the main tasklet first, then the others oldest
/// first.
std::vector<tasklet_info> list_tasklets(const list_options& opts = {});

/// One line for `t` as dumps show it, without a newline:
/// `tasklet 4 'consumer': blocked on receive on channel 'jobs' (balance -1); created at main.cpp:12`.
std::string describe(const tasklet_info& t);

/// Writes list_tasklets(opts) to `os`: a header line, then describe() of each tasklet, each
/// followed by its backtrace (indented) when `opts.backtraces` is set.
void dump_tasklets(std::ostream& os, const list_options& opts = {});

/// The backtrace of `t`, a tasklet of the calling thread, one frame a line (the caller's own
/// stack if `t` is the current tasklet). For a tasklet that has not started or has ended,
/// or belongs to another thread, a line in parentheses saying so.
std::string backtrace(const tasklet& t, std::size_t max_frames = 32);

/// Writes the tasklets of every thread that has a scheduler to `os`. The calling thread is
/// listed directly; each other thread whose reactor is running lists its own tasklets in
/// its reactor tasklet (so the listing is consistent) and is waited for up to `timeout`. A
/// thread that does not answer (no reactor running, or busy without yielding) is interrupted
/// with a signal instead, which shows the tasklet it is running and that tasklet's frames.
void dump_all_threads(std::ostream& os, const list_options& opts = {},
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

/// Opt-in: from now on, signal `signo` makes a background thread write dump_all_threads(opts)
/// to stderr (file descriptor 2). The handler itself only wakes that thread, so it is safe
/// whatever the process was doing. Calling it again replaces the options; a second signal
/// number replaces the first. Throws std::invalid_argument for a signal that cannot be caught.
void install_dump_signal(int signo = SIGUSR1, const list_options& opts = {});

/// Undoes install_dump_signal(): the signal gets its default action back.
void remove_dump_signal();

/// Labels what the current tasklet is doing for as long as the object lives; listings and
/// deadlock messages show the text in brackets next to what the tasklet waits on:
/// `debug::wait_label l("fetching the user's profile"); auto p = block_on(fetch(id));`.
/// Labels nest; the innermost one shows. Construction costs two stores plus, for a
/// std::string, keeping the string.
class wait_label {
 public:
  /// A label whose text is fixed (a string literal, or text that outlives the label).
  explicit wait_label(const char* text);
  /// A label that keeps its own copy of `text`.
  explicit wait_label(std::string text);
  /// Restores the label that was innermost before this one.
  ~wait_label();
  /// Not copyable: a label belongs to the scope that made it.
  wait_label(const wait_label&) = delete;
  /// Not assignable.
  wait_label& operator=(const wait_label&) = delete;

 private:
  std::string owned_;
  detail::wait_note note_;
};

}  // namespace twistlet::debug
