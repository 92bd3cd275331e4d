// Stacks for tasklets: reserved in slabs with MAP_NORESERVE (only touched pages cost memory),
// a guard page below each stack, pooled per thread.
//
// Guard pages and the kernel's limit on memory mappings (vm.max_map_count, 65530 by default):
// an mprotect()ed guard page splits its slab mapping, costing two mappings per stack, which
// would cap a process near 32,000 guarded stacks. So guards are installed, in order of
// preference, with
//   1. madvise(MADV_GUARD_INSTALL) (Linux 6.13+): a guard marker in the page tables that costs
//      no mapping at all, so every stack keeps a real guard page with no cap on their number;
//   2. mprotect(PROT_NONE), while the stacks guarded this way stay within a quarter of
//      vm.max_map_count (half of the limit's mappings), leaving the rest to the program;
//   3. beyond that budget, a canary: a known pattern in the lowest bytes of the stack, checked
//      whenever the tasklet switches out and when it ends. An overflow is then reported (with
//      the tasklet's name) after the fact rather than at the faulting instruction.
// Mode 3 is announced once on stderr. TWISTLET_STACK_GUARD=madvise|mprotect|canary forces a
// mode (for tests).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace twistlet::detail {

enum class guard_kind : std::uint8_t { madvise, mprotect, canary };

/// One tasklet stack: usable memory [base, base + size), grows down from base + size.
struct stack_region {
  char* base = nullptr;
  std::size_t size = 0;
  char* guard = nullptr;  // the guard page (or canary page) just below base
  guard_kind guard_type = guard_kind::madvise;
  bool cold = false;      // pages returned to the kernel while pooled
};

/// Process-wide statistics (read by the debug layer).
struct stack_stats {
  std::size_t slabs = 0;
  std::size_t stacks_in_use = 0;
  std::size_t stacks_pooled = 0;
  std::size_t madvise_guards = 0;
  std::size_t mprotect_guards = 0;
  std::size_t canary_guards = 0;
};

class stack_pool {
 public:
  static constexpr std::size_t default_stack_size = 128 * 1024;
  static constexpr std::size_t min_stack_size = 16 * 1024;
  /// Warm stacks kept per size class with their pages resident; further returned stacks give
  /// their pages back to the kernel (the reservation stays for reuse).
  static constexpr std::size_t hot_limit = 256;
  /// Stacks returned beyond hot_limit give their pages back in batches of this many, so that
  /// neighbours in a slab (the usual case when many tasklets end together) go in one call.
  static constexpr std::size_t trim_batch = 64;

  stack_pool();
  stack_pool(const stack_pool&) = delete;
  stack_pool& operator=(const stack_pool&) = delete;
  ~stack_pool();

  /// A stack with at least `size` usable bytes (0: the default). Throws std::bad_alloc when
  /// the address space is exhausted.
  stack_region allocate(std::size_t size);
  void release(stack_region s) noexcept;
  /// Forgets every slab without unmapping it, so that the destructor leaves all stacks mapped
  /// (for a pool destroyed while code still runs on one of its stacks).
  void abandon() noexcept;

  static std::size_t page_size() noexcept;
  static std::size_t round_size(std::size_t size) noexcept;
  static stack_stats stats() noexcept;

  /// True if the canary of a canary-guarded stack is intact (always true for other kinds).
  static bool canary_intact(const stack_region& s) noexcept;

 private:
  struct slab {
    char* memory;
    std::size_t bytes;
  };
  struct size_class {
    std::size_t size = 0;            // usable bytes of each stack
    std::vector<stack_region> hot;      // resident pages, LIFO
    std::vector<stack_region> pending;  // resident pages, to be given back in the next batch
    std::vector<stack_region> cold;     // pages given back
    char* next_slot = nullptr;       // unused slots of the newest slab
    std::size_t slots_left = 0;
    std::size_t next_slab_slots = 16;  // slabs grow geometrically up to 512 stacks
  };
  size_class& class_for(std::size_t size);
  stack_region carve(size_class& c);
  static void trim(size_class& c) noexcept;

  std::vector<size_class> classes_;
  std::vector<slab> slabs_;
  // Written only by the owning thread, read by stats() from any: a plain load and store per
  // update, where a shared atomic counter would cost a locked instruction on every tasklet's
  // creation and end.
  std::atomic<std::size_t> in_use_{0};
  std::atomic<std::size_t> pooled_{0};
};

/// Installs the process-wide SIGSEGV handler (once) and an alternate signal stack for the
/// calling thread, so that a guard-page hit is reported with the tasklet's name.
void install_overflow_handler();
/// Frees the calling thread's alternate signal stack, if twistlet installed one.
void remove_overflow_handler_stack() noexcept;
/// Implemented by the scheduler: if `fault` lies in the guard page of this thread's current
/// tasklet, names that tasklet. Must be async-signal-safe.
bool overflow_culprit(const void* fault, std::uint64_t& id, const char*& name, std::size_t& len) noexcept;
/// Prints "stack overflow in tasklet <id> '<name>'" to stderr and aborts; async-signal-safe.
[[noreturn]] void report_stack_overflow(std::uint64_t id, const char* name, std::size_t len) noexcept;

}  // namespace twistlet::detail
