#include "core/stack_pool.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <new>
#include <string_view>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

namespace twistlet::detail {
namespace {

constexpr std::size_t canary_bytes = 64;
constexpr unsigned char canary_byte = 0xA5;
// Slabs grow geometrically so that a program with a handful of tasklets reserves little
// address space and one with a million needs only a few thousand mappings.
constexpr std::size_t max_slab_slots = 512;

// Counters changed on slow paths only (new slabs and guards); the per-stack ones live in
// each pool.
struct global_stats {
  std::atomic<std::size_t> slabs{0}, madvise_guards{0}, mprotect_guards{0}, canary_guards{0};
};
global_stats g_stats;

// Every live pool, for stats(). Never destroyed: pools of threads still running at exit may
// outlive static destruction.
struct pool_registry {
  std::mutex mutex;
  std::vector<const stack_pool*> pools;
};
pool_registry& registry() {
  static pool_registry* r = new pool_registry;
  return *r;
}

void bump(std::atomic<std::size_t>& counter, std::ptrdiff_t delta) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + static_cast<std::size_t>(delta), std::memory_order_relaxed);
}

std::atomic<bool> g_madvise_guard_works{true};
std::atomic<bool> g_canary_announced{false};

guard_kind forced_guard() {
  static const int forced = [] {
    const char* v = std::getenv("TWISTLET_STACK_GUARD");
    if (!v) return -1;
    std::string_view s(v);
    if (s == "madvise") return static_cast<int>(guard_kind::madvise);
    if (s == "mprotect") return static_cast<int>(guard_kind::mprotect);
    if (s == "canary") return static_cast<int>(guard_kind::canary);
    return -1;
  }();
  return forced < 0 ? guard_kind::madvise : static_cast<guard_kind>(forced);
}
bool guard_forced() {
  static const bool forced = std::getenv("TWISTLET_STACK_GUARD") != nullptr;
  return forced;
}

std::size_t mprotect_budget() {
  static const std::size_t budget = [] {
    std::size_t limit = 65530;
    std::ifstream in("/proc/sys/vm/max_map_count");
    if (in) in >> limit;
    return limit / 4;
  }();
  return budget;
}

void write_canary(char* guard_top) noexcept { std::memset(guard_top - canary_bytes, canary_byte, canary_bytes); }

// Decides how the page below a fresh stack is guarded and installs the guard.
guard_kind install_guard(char* guard, std::size_t page) {
  guard_kind want = guard_forced() ? forced_guard() : guard_kind::madvise;
  if (want == guard_kind::madvise) {
    if (g_madvise_guard_works.load(std::memory_order_relaxed) && ::madvise(guard, page, MADV_GUARD_INSTALL) == 0) {
      g_stats.madvise_guards.fetch_add(1, std::memory_order_relaxed);
      return guard_kind::madvise;
    }
    g_madvise_guard_works.store(false, std::memory_order_relaxed);
    want = guard_kind::mprotect;
  }
  if (want == guard_kind::mprotect) {
    if ((guard_forced() || g_stats.mprotect_guards.load(std::memory_order_relaxed) < mprotect_budget()) &&
        ::mprotect(guard, page, PROT_NONE) == 0) {
      g_stats.mprotect_guards.fetch_add(1, std::memory_order_relaxed);
      return guard_kind::mprotect;
    }
    if (!guard_forced() && !g_canary_announced.exchange(true)) {
      static const char msg[] =
          "twistlet: guard pages now exceed a quarter of vm.max_map_count; further tasklet stacks are "
          "checked with a canary instead (raise vm.max_map_count, or use Linux 6.13+ for free guards)\n";
      [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
    }
  }
  g_stats.canary_guards.fetch_add(1, std::memory_order_relaxed);
  return guard_kind::canary;
}

}  // namespace

std::size_t stack_pool::page_size() noexcept {
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

std::size_t stack_pool::round_size(std::size_t size) noexcept {
  if (size == 0) {
    size = default_stack_size;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    size *= 4;  // instrumented frames are several times larger
#endif
  }
  size = std::max(size, min_stack_size);
  const std::size_t page = page_size();
  return (size + page - 1) / page * page;
}

stack_pool::size_class& stack_pool::class_for(std::size_t size) {
  for (auto& c : classes_)
    if (c.size == size) return c;
  classes_.push_back(size_class{});
  classes_.back().size = size;
  return classes_.back();
}

stack_region stack_pool::carve(size_class& c) {
  const std::size_t page = page_size();
  const std::size_t slot = c.size + page;
  if (c.slots_left == 0) {
    const std::size_t slots = c.next_slab_slots;
    c.next_slab_slots = std::min(max_slab_slots, slots * 2);
    const std::size_t bytes = slots * slot;
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) throw std::bad_alloc();
    slabs_.push_back(slab{static_cast<char*>(mem), bytes});
    g_stats.slabs.fetch_add(1, std::memory_order_relaxed);
    c.next_slot = static_cast<char*>(mem);
    c.slots_left = slots;
  }
  stack_region r;
  r.guard = c.next_slot;
  r.base = c.next_slot + page;
  r.size = c.size;
  c.next_slot += slot;
  --c.slots_left;
  r.guard_type = install_guard(r.guard, page);
  return r;
}

stack_region stack_pool::allocate(std::size_t size) {
  size_class& c = class_for(round_size(size));
  stack_region r;
  if (!c.hot.empty()) {
    r = c.hot.back();
    c.hot.pop_back();
    bump(pooled_, -1);
  } else if (!c.pending.empty()) {
    r = c.pending.back();
    c.pending.pop_back();
    bump(pooled_, -1);
  } else if (!c.cold.empty()) {
    r = c.cold.back();
    c.cold.pop_back();
    r.cold = false;
    bump(pooled_, -1);
  } else {
    r = carve(c);
  }
  if (r.guard_type == guard_kind::canary) write_canary(r.base);
  bump(in_use_, 1);
  return r;
}

void stack_pool::release(stack_region r) noexcept {
#if defined(__SANITIZE_ADDRESS__)
  // A finished tasklet never returns through its outer frames, so their redzones are still
  // poisoned; the next tasklet on this stack must start from clean shadow memory.
  ASAN_UNPOISON_MEMORY_REGION(r.base, r.size);
#endif
  bump(in_use_, -1);
  bump(pooled_, 1);
  size_class& c = class_for(r.size);
  if (c.hot.size() < hot_limit) {
    c.hot.push_back(r);
    return;
  }
  c.pending.push_back(r);
  if (c.pending.size() >= trim_batch) trim(c);
}

void stack_pool::trim(size_class& c) noexcept {
  // Runs of adjacent slots ([guard][stack][guard][stack]...) go in one madvise() each. Guard
  // markers and mprotect()ed pages survive MADV_DONTNEED; a canary is written again when its
  // stack is next allocated.
  std::sort(c.pending.begin(), c.pending.end(),
            [](const stack_region& a, const stack_region& b) { return a.base < b.base; });
  std::size_t i = 0;
  while (i < c.pending.size()) {
    char* begin = c.pending[i].base;
    char* end = begin + c.pending[i].size;
    std::size_t j = i + 1;
    while (j < c.pending.size() && c.pending[j].guard == end) {
      end = c.pending[j].base + c.pending[j].size;
      ++j;
    }
    ::madvise(begin, static_cast<std::size_t>(end - begin), MADV_DONTNEED);
    i = j;
  }
  for (stack_region& r : c.pending) {
    r.cold = true;
    c.cold.push_back(r);
  }
  c.pending.clear();
}

stack_pool::stack_pool() {
  pool_registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.pools.push_back(this);
}

stack_pool::~stack_pool() {
  {
    pool_registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.pools.erase(std::find(r.pools.begin(), r.pools.end(), this));
  }
  for (const auto& s : slabs_) {
    ::munmap(s.memory, s.bytes);
    g_stats.slabs.fetch_sub(1, std::memory_order_relaxed);
  }
}

void stack_pool::abandon() noexcept {
  classes_.clear();
  slabs_.clear();
}

stack_stats stack_pool::stats() noexcept {
  stack_stats s;
  s.slabs = g_stats.slabs.load(std::memory_order_relaxed);
  {
    pool_registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    for (const stack_pool* p : r.pools) {
      s.stacks_in_use += p->in_use_.load(std::memory_order_relaxed);
      s.stacks_pooled += p->pooled_.load(std::memory_order_relaxed);
    }
  }
  s.madvise_guards = g_stats.madvise_guards.load(std::memory_order_relaxed);
  s.mprotect_guards = g_stats.mprotect_guards.load(std::memory_order_relaxed);
  s.canary_guards = g_stats.canary_guards.load(std::memory_order_relaxed);
  return s;
}

bool stack_pool::canary_intact(const stack_region& s) noexcept {
  if (s.guard_type != guard_kind::canary) return true;
  const char* p = s.base - canary_bytes;
  for (std::size_t i = 0; i < canary_bytes; ++i)
    if (static_cast<unsigned char>(p[i]) != canary_byte) return false;
  return true;
}

// ---- overflow reporting ---------------------------------------------------------------------

namespace {

struct sigaction g_previous_segv;
std::once_flag g_handler_once;
constexpr std::size_t altstack_bytes = 64 * 1024;
thread_local void* t_altstack = nullptr;

void on_segv(int sig, siginfo_t* info, void* context) {
  std::uint64_t id = 0;
  const char* name = nullptr;
  std::size_t len = 0;
  if (info && overflow_culprit(info->si_addr, id, name, len)) report_stack_overflow(id, name, len);
  // Not ours: hand the fault to whoever had the signal before (a sanitizer, a crash reporter),
  // or let the default action run when the faulting instruction is retried.
  if (g_previous_segv.sa_flags & SA_SIGINFO) {
    if (g_previous_segv.sa_sigaction) {
      g_previous_segv.sa_sigaction(sig, info, context);
      return;
    }
  } else if (g_previous_segv.sa_handler != SIG_DFL && g_previous_segv.sa_handler != SIG_IGN) {
    g_previous_segv.sa_handler(sig);
    return;
  }
  ::signal(sig, SIG_DFL);
}

}  // namespace

void report_stack_overflow(std::uint64_t id, const char* name, std::size_t len) noexcept {
  static char buf[512];  // static: the alternate signal stack is small, and we abort anyway
  std::size_t n = 0;
  auto put = [&](const char* s, std::size_t count) {
    for (std::size_t i = 0; i < count && n < sizeof buf; ++i) buf[n++] = s[i];
  };
  static const char head[] = "stack overflow in tasklet ";
  put(head, sizeof head - 1);
  char digits[24];
  std::size_t d = 0;
  do {
    digits[d++] = static_cast<char>('0' + id % 10);
    id /= 10;
  } while (id != 0);
  while (d > 0) put(&digits[--d], 1);
  put(" '", 2);
  if (name) put(name, std::min<std::size_t>(len, 400));
  put("'\n", 2);
  [[maybe_unused]] auto w = ::write(2, buf, n);
  std::abort();
}

void install_overflow_handler() {
  std::call_once(g_handler_once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, &g_previous_segv);
  });
  // The handler must not run on the overflowing stack itself: give this thread an alternate
  // signal stack unless it has one (sanitizer runtimes install their own).
  stack_t current;
  if (::sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) && !t_altstack) {
    void* mem = ::mmap(nullptr, altstack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return;
    stack_t ss;
    ss.ss_sp = mem;
    ss.ss_size = altstack_bytes;
    ss.ss_flags = 0;
    if (::sigaltstack(&ss, nullptr) == 0)
      t_altstack = mem;
    else
      ::munmap(mem, altstack_bytes);
  }
}

void remove_overflow_handler_stack() noexcept {
  if (!t_altstack) return;
  stack_t ss;
  std::memset(&ss, 0, sizeof ss);
  ss.ss_flags = SS_DISABLE;
  ::sigaltstack(&ss, nullptr);
  ::munmap(t_altstack, altstack_bytes);
  t_altstack = nullptr;
}

}  // namespace twistlet::detail
