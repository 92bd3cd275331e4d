// twistlet defer layer: Twisted's Deferred for C++.
//
// A deferred<T> is a copyable handle to ONE callback chain. Stages added through any handle run
// in the order they were added, each receiving the previous stage's result: a value (callback
// track) or a failure (errback track). An exception thrown by a stage switches to the error
// track; an errback that returns a value switches back; a stage that returns an unfired deferred
// pauses the chain until that one fires. Handles are typed: deferred<T> names the chain's
// result type at the point where the handle was made, so a fluent chain is checked at compile
// time; a stale handle whose T no longer matches the chain is refused at run time with
// std::logic_error naming both types.
//
// Deferreds are single-thread objects: all use of one chain must happen on the thread that
// created it (checked in TWISTLET_CHECKS builds).
//
// Cost model: one heap block per chain holds the whole state, including room for the first
// few stages, a small canceller and a small result, and freed blocks are reused (per thread);
// reference counts are plain integers; the success path throws nothing.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include <twistlet/failure.hpp>
#include <twistlet/tasklet.hpp>

namespace twistlet {

class reactor_time;
template <class T = void>
class deferred;

/// callback()/errback() on a deferred that has already fired.
struct already_called_error : std::logic_error {
  using std::logic_error::logic_error;
  /// With the standard message.
  already_called_error() : std::logic_error("deferred already fired") {}
};

/// The result of a cancelled deferred.
struct cancelled_error : std::runtime_error {
  using std::runtime_error::runtime_error;
  /// With the standard message.
  cancelled_error() : std::runtime_error("deferred was cancelled") {}
};

/// The result of a deferred whose computing tasklet was killed (see the bridge layer). Never
/// reported as an unhandled error.
struct tasklet_killed_error : cancelled_error {
  using cancelled_error::cancelled_error;
  /// With the standard message.
  tasklet_killed_error() : cancelled_error("the tasklet computing the deferred was killed") {}
};

/// The result of a deferred whose add_timeout() expired.
struct timeout_error : std::runtime_error {
  using std::runtime_error::runtime_error;
  timeout_error() : std::runtime_error("deferred timed out") {}
};

/// A deferred_list(fire_on_one_errback) or gather_results() input failed.
struct first_error : std::runtime_error {
  /// Input `index` failed with `f`.
  first_error(failure f, std::size_t index);
  /// The failure of the input.
  failure sub_failure;
  /// The position of the input.
  std::size_t index;
};

/// Every input of race() failed.
struct all_failed_error : std::runtime_error {
  /// `failures` in input order.
  explicit all_failed_error(std::vector<failure> failures);
  /// No failures, only a message.
  explicit all_failed_error(const std::string& message);
  /// Each input's failure, in input order.
  std::vector<failure> failures;
};

/// Called with every failure that reaches the end of a chain without being handled, once, when
/// the chain's last handle goes away.
using unhandled_error_handler = std::function<void(const failure&)>;

/// Installs `h` (process-wide) and returns the previous handler. An empty `h` restores the
/// default, which writes "Unhandled error in Deferred:" and the failure's what() to stderr.
/// The handler runs on the thread that dropped the chain; exceptions it throws are ignored.
unhandled_error_handler set_unhandled_error_handler(unhandled_error_handler h);

/// Reports `f` through the current handler, unless its exception is tasklet_exit or
/// tasklet_killed_error (exit signals are never errors). The reactor routes exceptions thrown
/// by timer functions here.
void report_unhandled_error(const failure& f) noexcept;

namespace detail {

template <class T>
struct is_deferred : std::false_type {};
template <class T>
struct is_deferred<deferred<T>> : std::true_type {};
template <class T>
inline constexpr bool is_deferred_v = is_deferred<std::remove_cvref_t<T>>::value;

// ---------------------------------------------------------------------------------------------
// The result slot: a value of the chain's current type, a failure, or nothing. Small values
// live in the slot itself; others in a box on the heap.

inline constexpr std::size_t result_buffer_size = 32;
inline constexpr std::size_t result_buffer_align = 16;

template <class T>
inline constexpr bool result_inline = sizeof(T) <= result_buffer_size &&
                                      alignof(T) <= result_buffer_align &&
                                      std::is_nothrow_move_constructible_v<T>;

/// How to destroy and move a stored value; null for trivially copyable inline values.
struct value_ops {
  void (*destroy)(void* buf) noexcept;
  void (*relocate)(void* dst, void* src) noexcept;
};

template <class T>
struct value_ops_for {
  static void destroy(void* buf) noexcept {
    if constexpr (result_inline<T>)
      std::launder(static_cast<T*>(buf))->~T();
    else
      delete *static_cast<T**>(buf);
  }
  static void relocate(void* dst, void* src) noexcept {
    if constexpr (result_inline<T>) {
      T* from = std::launder(static_cast<T*>(src));
      ::new (dst) T(std::move(*from));
      from->~T();
    } else {
      *static_cast<T**>(dst) = *static_cast<T**>(src);
    }
  }
  static constexpr value_ops table{&destroy, &relocate};
  static const value_ops* get() noexcept {
    if constexpr (result_inline<T> && std::is_trivially_copyable_v<T>)
      return nullptr;
    else
      return &table;
  }
};

enum class result_kind : std::uint8_t { empty, value, failure };

struct result_slot {
  alignas(result_buffer_align) unsigned char buf[result_buffer_size];
  const value_ops* ops = nullptr;
  result_kind kind = result_kind::empty;
  /// A consumer (deferred_list's consume_errors) has seen this failure: do not report it.
  bool handled = false;

  result_slot() noexcept = default;
  result_slot(const result_slot&) = delete;
  result_slot& operator=(const result_slot&) = delete;
  ~result_slot() { clear(); }

  template <class T, class... A>
  void emplace(A&&... args) {
    if constexpr (!std::is_void_v<T>) {
      if constexpr (result_inline<T>)
        ::new (static_cast<void*>(buf)) T(std::forward<A>(args)...);
      else
        *reinterpret_cast<T**>(buf) = new T(std::forward<A>(args)...);
      ops = value_ops_for<T>::get();
    }
    kind = result_kind::value;
  }
  template <class T>
  T& ref() noexcept {
    if constexpr (result_inline<T>)
      return *std::launder(reinterpret_cast<T*>(buf));
    else
      return **reinterpret_cast<T**>(buf);
  }
  /// Moves the value out and leaves the slot empty.
  template <class T>
  T take() {
    if constexpr (result_inline<T>) {
      T v(std::move(ref<T>()));
      clear();
      return v;
    } else {
      std::unique_ptr<T> box(*reinterpret_cast<T**>(buf));
      kind = result_kind::empty;
      ops = nullptr;
      return T(std::move(*box));
    }
  }
  void set_failure(failure f) noexcept {
    ::new (static_cast<void*>(buf)) failure(std::move(f));
    kind = result_kind::failure;
    handled = false;
  }
  failure& failure_ref() noexcept { return *std::launder(reinterpret_cast<failure*>(buf)); }
  failure take_failure() noexcept {
    failure f(std::move(failure_ref()));
    clear();
    return f;
  }
  void clear() noexcept {
    if (kind == result_kind::value) {
      if (ops) ops->destroy(buf);
    } else if (kind == result_kind::failure) {
      failure_ref().~failure();
    }
    kind = result_kind::empty;
    ops = nullptr;
  }
  /// Moves `other`'s result here (this slot must be empty) and leaves `other` empty.
  void relocate_from(result_slot& other) noexcept;
};

template <class T>
outcome<T> take_outcome(result_slot& r) {
  if (r.kind == result_kind::failure) return outcome<T>(r.take_failure());
  if constexpr (std::is_void_v<T>) {
    r.clear();
    return outcome<void>();
  } else {
    return outcome<T>(r.take<T>());
  }
}

// ---------------------------------------------------------------------------------------------
// Stages: type-erased callables stored in the chain's arena, in a FIFO list.

struct chain_state;
struct stage_record;

struct stage_ops {
  /// Runs the stage on `s.result`. Returns a chain whose waiting ended here (the continuation
  /// stage), with a reference the caller takes over; otherwise null. Never throws: a stage's
  /// exception becomes the chain's failure.
  // Only consume stages may throw (see deferred::consume); the rest turn exceptions into failures.
  chain_state* (*run)(stage_record* self, chain_state& s);
  void (*destroy)(stage_record* self) noexcept;
};

struct stage_record {
  stage_record* next = nullptr;
  const stage_ops* ops;
  explicit stage_record(const stage_ops* o) noexcept : ops(o) {}
};

template <class F>
struct stage_node : stage_record {
  template <class G>
  stage_node(const stage_ops* o, G&& g) : stage_record(o), fn(std::forward<G>(g)) {}
  F fn;
};

/// The canceller given to a deferred's constructor, type-erased.
struct canceller_base {
  void (*invoke)(canceller_base* self, chain_state* s);
  /// Destroys it; returns true if it lived in the chain's arena (then the memory stays there).
  bool (*destroy)(canceller_base* self) noexcept;
};

/// Cancellers up to this size (with their header) live in the chain's arena, so that
/// defer_later and deferred_tasklet cost no allocation for theirs.
inline constexpr std::size_t inline_canceller_size = 48;

struct arena_chunk {
  arena_chunk* next;
  std::size_t size;
};

inline constexpr std::size_t inline_arena_size = 80;

/// The one heap object behind every handle of a chain.
struct chain_state {
  std::uint32_t refs = 1;   // handles and internal owners; contents die at 0
  std::uint32_t weak = 0;   // weak_ref holders; memory is freed when both are 0
  std::uint32_t user_pauses = 0;
  bool called = false;      // callback/errback happened
  bool running = false;     // a run loop is executing this chain's stages
  bool waiting = false;     // paused until the deferred in chained_to fires
  bool handed_over = false; // its result went to an outer deferred; no more stages
  bool consumed = false;    // a terminal consumer is attached; no more stages
  bool suppress_already_called = false;  // cancelled without canceller: swallow one fire
  bool disposed = false;    // contents destroyed; only weak refs keep the memory
  std::uint8_t arena_cancellers = 0;  // live cancellers in the arena: it must not be reset
  const void* owner = nullptr;
  const tasklet_impl* runner = nullptr;  // the tasklet whose run loop set `running`
  const std::type_info* head_type;  // what callback() takes
  const std::type_info* tail_type;  // what the next stage receives
  chain_state* chained_to = nullptr;  // the chain this one waits on (not owned)
  canceller_base* canceller = nullptr;
  stage_record* first = nullptr;
  stage_record* last = nullptr;
  unsigned char* arena_pos;
  unsigned char* arena_end;
  arena_chunk* chunks = nullptr;
  chain_state* next_disposal = nullptr;
  result_slot result;
  alignas(16) unsigned char arena[inline_arena_size];

  explicit chain_state(const std::type_info* type) noexcept
      : head_type(type), tail_type(type), arena_pos(arena), arena_end(arena + inline_arena_size) {
#if defined(TWISTLET_CHECKS)
    owner = owner_token();
#endif
  }
  chain_state(const chain_state&) = delete;
  chain_state& operator=(const chain_state&) = delete;

  bool runnable() const noexcept { return called && user_pauses == 0 && !waiting && !running; }

  void* allocate(std::size_t size, std::size_t align);
  void push(stage_record* r) noexcept {
    if (last)
      last->next = r;
    else
      first = r;
    last = r;
  }
};

void* allocate_stage_slow(chain_state& s, std::size_t size, std::size_t align);

/// A new chain whose first stage takes `type`. Freed chains are kept per thread for reuse:
/// creating the deferred is all that a hop through the reactor allocates.
chain_state* new_chain(const std::type_info* type);

inline void* chain_state::allocate(std::size_t size, std::size_t align) {
  auto p = reinterpret_cast<std::uintptr_t>(arena_pos);
  p = (p + align - 1) & ~(static_cast<std::uintptr_t>(align) - 1);
  if (p + size <= reinterpret_cast<std::uintptr_t>(arena_end)) [[likely]] {
    arena_pos = reinterpret_cast<unsigned char*>(p + size);
    return reinterpret_cast<void*>(p);
  }
  return allocate_stage_slow(*this, size, align);
}

/// Destroys canceller `c` of chain `s`.
inline void destroy_canceller(chain_state& s, canceller_base* c) noexcept {
  if (c->destroy(c)) --s.arena_cancellers;
}

/// Destroys the contents of a chain whose last strong reference went (reporting an unhandled
/// failure), without recursing when that releases further chains.
void destroy_chain(chain_state* s) noexcept;
/// Drops a weak reference.
void release_weak(chain_state* s) noexcept;
/// Runs `s`'s stages (and those of outer chains its results flow into) until every chain
/// involved is empty, paused or waiting. Iterative: stack use does not grow with nesting.
/// An exception from a consume stage propagates, with every chain involved left consistent
/// (not running; stages not yet run stay queued).
void run_chain(chain_state* s);
/// Makes `outer` follow `inner` (a deferred returned by one of outer's stages): steals
/// inner's result if it has one, else waits for it. Throws std::logic_error for misuse
/// (returning the chain itself, a consumed or already chained deferred, a type mismatch,
/// a cycle); the calling stage turns that into outer's failure.
void chain_to(chain_state& outer, chain_state* inner, const std::type_info& type);
/// begin_fire() for a chain that fired before.
bool begin_fire_again(chain_state& s);
/// Returns false if this fire is the one swallowed after a cancel without canceller.
/// Throws already_called_error if the chain fired before.
inline bool begin_fire(chain_state& s) { return !s.called || begin_fire_again(s); }
/// Marks the chain fired, drops its canceller and runs it. Inline, so that a waiter woken by
/// the chain (a tasklet switch) has one frame less to return through.
inline void finish_fire(chain_state& s) {
  s.called = true;
  if (canceller_base* c = std::exchange(s.canceller, nullptr)) destroy_canceller(s, c);
  if (s.user_pauses == 0) run_chain(&s);
}
void fire_failure(chain_state& s, failure f);
void cancel_chain(chain_state* s);
void unpause_chain(chain_state& s);
[[noreturn]] void throw_empty_handle();
[[noreturn]] void throw_not_addable(const chain_state& s);
/// Throws std::logic_error unless `actual` and `expected` are the same type.
void check_type(const std::type_info& actual, const std::type_info& expected, const char* what);

inline bool same_type(const std::type_info* a, const std::type_info* b) noexcept {
  return a == b || *a == *b;
}

inline void release(chain_state* s) noexcept {
  if (--s->refs == 0) destroy_chain(s);
}

/// A reference that does not keep the chain's contents alive.
class weak_ref {
 public:
  weak_ref() noexcept = default;
  explicit weak_ref(chain_state* s) noexcept : s_(s) {
    if (s_) ++s_->weak;
  }
  weak_ref(const weak_ref& o) noexcept : weak_ref(o.s_) {}
  weak_ref(weak_ref&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  weak_ref& operator=(weak_ref o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~weak_ref() {
    if (s_) release_weak(s_);
  }
  /// A new strong reference, or null if the chain is gone.
  chain_state* lock() const noexcept {
    if (!s_ || s_->refs == 0) return nullptr;
    ++s_->refs;
    return s_;
  }

 private:
  chain_state* s_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// What a stage callable returns, and the chain type that follows it.

template <class R>
struct stage_value {
  using type = std::remove_cvref_t<R>;
};
template <>
struct stage_value<void> {
  using type = void;
};
template <class U>
struct stage_value<deferred<U>> {
  using type = U;
};
template <class U>
struct stage_value<outcome<U>> {
  using type = U;
};
template <class R>
using stage_value_t = typename stage_value<std::remove_cvref_t<R>>::type;

template <class F, class T>
struct callback_traits {
  static constexpr bool with_arg = std::is_invocable_v<F&, T&&>;
  static constexpr bool without_arg = std::is_invocable_v<F&>;
  static_assert(with_arg || without_arg,
                "add_callback: the function must be callable as f(T) or f()");
  using result = typename std::conditional_t<with_arg, std::invoke_result<F&, T&&>,
                                             std::invoke_result<F&>>::type;
};
template <class F>
struct callback_traits<F, void> {
  static_assert(std::is_invocable_v<F&>, "add_callback on deferred<void>: the function must be f()");
  using result = std::invoke_result_t<F&>;
};

template <class T, class F>
decltype(auto) invoke_callback(F& f, [[maybe_unused]] result_slot& r) {
  if constexpr (std::is_void_v<T>) {
    r.clear();
    return std::invoke(f);
  } else if constexpr (callback_traits<F, T>::with_arg) {
    return std::invoke(f, r.take<T>());
  } else {
    r.clear();
    return std::invoke(f);
  }
}

template <class D>
chain_state* state_of(const D& d) noexcept;

/// Stores what a stage returned as the chain's new result. `call` runs the user function.
template <class U, class Call>
void store_result(chain_state& s, Call&& call) {
  using R = decltype(call());
  if constexpr (std::is_void_v<R>) {
    call();
    s.result.emplace<void>();
  } else if constexpr (is_deferred_v<R>) {
    auto inner = call();
    chain_to(s, state_of(inner), typeid(U));
  } else if constexpr (is_outcome<std::remove_cvref_t<R>>::value) {
    auto o = call();
    if (!o.has_value()) {
      s.result.set_failure(o.error());
    } else if constexpr (std::is_void_v<U>) {
      s.result.emplace<void>();
    } else {
      s.result.emplace<U>(std::move(o).value());
    }
  } else {
    s.result.emplace<U>(call());
  }
}

enum class stage_kind { callback, errback, both, pair, consume, tap };

template <class F, class G>
struct callback_pair {
  F on_value;
  G on_failure;
};

template <class T, class U, class F, stage_kind K>
struct stage_impl {
  using node = stage_node<F>;

  static chain_state* run(stage_record* self, chain_state& s) {
    F& f = static_cast<node*>(self)->fn;
    result_slot& r = s.result;
    if constexpr (K == stage_kind::consume) {
      // A consumer hands the result on (block_on wakes its waiter here, switching tasklets);
      // whatever it throws (a kill delivered to the firing tasklet meanwhile) belongs to the
      // caller of callback()/errback(), not to the chain.
      std::invoke(f, take_outcome<T>(r));
      return nullptr;
    }
    try {
      if constexpr (K == stage_kind::callback) {
        if (r.kind != result_kind::value) return nullptr;
        store_result<U>(s, [&]() -> decltype(auto) { return invoke_callback<T>(f, r); });
      } else if constexpr (K == stage_kind::errback) {
        if (r.kind != result_kind::failure) return nullptr;
        failure e = r.take_failure();
        store_result<U>(s, [&]() -> decltype(auto) { return std::invoke(f, std::as_const(e)); });
      } else if constexpr (K == stage_kind::both) {
        store_result<U>(s, [&]() -> decltype(auto) { return std::invoke(f, take_outcome<T>(r)); });
      } else if constexpr (K == stage_kind::pair) {
        if (r.kind == result_kind::value) {
          store_result<U>(s, [&]() -> decltype(auto) { return invoke_callback<T>(f.on_value, r); });
        } else {
          failure e = r.take_failure();
          store_result<U>(s, [&]() -> decltype(auto) {
            return std::invoke(f.on_failure, std::as_const(e));
          });
        }
      } else if constexpr (K != stage_kind::consume) {
        std::invoke(f, r);
      }
    } catch (...) {
      r.clear();
      r.set_failure(failure(std::current_exception()));
    }
    return nullptr;
  }
  static void destroy(stage_record* self) noexcept { static_cast<node*>(self)->~node(); }
  static constexpr stage_ops ops{&run, &destroy};
};

template <class T, class F, bool InArena>
struct canceller_box : canceller_base {
  template <class G>
  explicit canceller_box(G&& g) : canceller_base{&invoke_fn, &destroy_fn}, fn(std::forward<G>(g)) {}
  static void invoke_fn(canceller_base* self, chain_state* s);
  static bool destroy_fn(canceller_base* self) noexcept {
    if constexpr (InArena)
      static_cast<canceller_box*>(self)->~canceller_box();
    else
      delete static_cast<canceller_box*>(self);
    return InArena;
  }
  F fn;
};

/// Makes `f(deferred<T>&)` the canceller of chain `s`, replacing any other: in the chain's
/// arena if it is small, else on the heap.
template <class T, class F>
void install_canceller(chain_state& s, F&& f) {
  using G = std::decay_t<F>;
  using small = canceller_box<T, G, true>;
  canceller_base* c;
  if constexpr (sizeof(small) <= inline_canceller_size && alignof(small) <= alignof(std::max_align_t)) {
    // Arena memory is never given back before the chain's contents die, so a constructor
    // that throws only wastes it.
    void* mem = s.allocate(sizeof(small), alignof(small));
    c = ::new (mem) small(std::forward<F>(f));
    ++s.arena_cancellers;
  } else {
    c = new canceller_box<T, G, false>(std::forward<F>(f));
  }
  if (canceller_base* old = std::exchange(s.canceller, c)) destroy_canceller(s, old);
}

struct chain_access;

}  // namespace detail

// -------------------------------------------------------------------------------------------

/// A copyable handle to one callback chain whose result, at the point this handle was made,
/// has type T (void: success without a value).
template <class T>
class deferred {
  static_assert(!detail::is_deferred_v<T>,
                "deferred<deferred<U>> is not allowed: a deferred's result is never a deferred "
                "(a stage returning deferred<U> makes the chain wait for it)");
  static_assert(!std::is_reference_v<T> && !std::is_const_v<T>, "deferred<T> needs a plain value type");
  static_assert(!std::is_same_v<T, failure>, "deferred<failure> is ambiguous: failures are errback results");
  static_assert(!detail::is_outcome<T>::value, "deferred<outcome<U>>: use deferred<U> with add_both");

  using arg_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

 public:
  /// The chain's result type when this handle was made.
  using value_type = T;

  /// An unfired deferred (a new chain).
  deferred() : s_(detail::new_chain(&typeid(T))) {}

  /// An unfired deferred whose cancel() calls `canceller(*this)` (at most once). A canceller
  /// may fire the deferred itself; if it does not, cancel() errbacks cancelled_error.
  explicit deferred(std::function<void(deferred<T>&)> canceller) : deferred() {
    if (canceller) detail::install_canceller<T>(*s_, std::move(canceller));
  }

  /// Another handle to the same chain.
  deferred(const deferred& o) noexcept : s_(o.s_) {
    if (s_) ++s_->refs;
  }
  /// Leaves `o` empty: every operation on an empty handle throws std::logic_error.
  deferred(deferred&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  /// Makes this a handle to `o`'s chain.
  deferred& operator=(const deferred& o) noexcept {
    deferred(o).swap(*this);
    return *this;
  }
  /// Takes over `o`'s chain, leaving `o` empty.
  deferred& operator=(deferred&& o) noexcept {
    deferred(std::move(o)).swap(*this);
    return *this;
  }
  ~deferred() {
    if (s_) detail::release(s_);
  }
  /// Exchanges the chains the two handles refer to.
  void swap(deferred& o) noexcept { std::swap(s_, o.s_); }

  /// Both handles refer to the same chain.
  friend bool operator==(const deferred& a, const deferred& b) noexcept { return a.s_ == b.s_; }

  /// Fires the chain with `value` (callback() for `deferred<void>`).
  /// Throws already_called_error if it fired before (except the one call swallowed after a
  /// cancel() without canceller); std::logic_error if the chain's first stage does not take a
  /// T (a stale handle) or the handle is empty, or (TWISTLET_CHECKS) if used from another
  /// thread than the creator.
  void callback(arg_type value)
    requires(!std::is_void_v<T>)
  {
    detail::chain_state* s = check_fire();
    if (!detail::begin_fire(*s)) return;
    s->result.template emplace<T>(std::move(value));
    detail::finish_fire(*s);
  }
  /// Fires the chain of a `deferred<void>`. Throws as callback(value).
  void callback()
    requires std::is_void_v<T>
  {
    detail::chain_state* s = check_fire();
    if (!detail::begin_fire(*s)) return;
    s->result.template emplace<void>();
    detail::finish_fire(*s);
  }

  /// Fires the chain's error track with `f`.
  /// Throws already_called_error as callback() does; std::logic_error for an empty handle or
  /// (TWISTLET_CHECKS) use from another thread.
  void errback(failure f) {
    detail::chain_state* s = state();
    TWISTLET_CHECK_OWNER(s->owner, "deferred");
    detail::fire_failure(*s, std::move(f));
  }
  /// Fires the chain's error track with the exception `e`.
  /// Throws std::invalid_argument if `e` is null; otherwise as errback(failure).
  void errback(std::exception_ptr e) { errback(failure(std::move(e))); }

  /// Appends a stage that runs on success: `f(T)` (or `f()`) returning U, void, `deferred<U>`
  /// (the chain waits for it) or `outcome<U>`. Failures pass by. Returns `deferred<U>` (the same
  /// chain). Runs at once if the chain has its result and is not running or paused.
  /// Throws std::logic_error if T is not the chain's current result type (a stale handle), if
  /// the chain is consumed or was handed over to an outer deferred, or for an empty handle.
  template <class F>
  auto add_callback(F&& f) {
    using R = typename detail::callback_traits<std::decay_t<F>, T>::result;
    using U = detail::stage_value_t<R>;
    return append<U, detail::stage_kind::callback>(std::forward<F>(f));
  }

  /// Appends a stage that runs on failure: `f(const failure&)` returning T (void for
  /// `deferred<void>`), `deferred<T>` or `outcome<T>`; to stay failed, throw (for instance
  /// `f.raise()` or `f.trap<E>()`). Values pass by. Returns `deferred<T>`.
  /// Throws as add_callback().
  template <class F>
  deferred<T> add_errback(F&& f) {
    using G = std::decay_t<F>;
    static_assert(std::is_invocable_v<G&, const failure&>, "add_errback: the function must be f(const failure&)");
    using U = detail::stage_value_t<std::invoke_result_t<G&, const failure&>>;
    static_assert(std::is_same_v<U, T>,
                  "add_errback: the function must return the chain's type T (or deferred<T>, outcome<T>), "
                  "or throw to stay failed");
    return append<T, detail::stage_kind::errback>(std::forward<F>(f));
  }

  /// Appends a stage that runs on either track: `f(outcome<T>)` returning U, void,
  /// `deferred<U>` or `outcome<U>`. Returns `deferred<U>`.
  /// Throws as add_callback().
  template <class F>
  auto add_both(F&& f) {
    using G = std::decay_t<F>;
    static_assert(std::is_invocable_v<G&, outcome<T>&&>, "add_both: the function must be f(outcome<T>)");
    using U = detail::stage_value_t<std::invoke_result_t<G&, outcome<T>&&>>;
    return append<U, detail::stage_kind::both>(std::forward<F>(f));
  }

  /// Appends one stage with a success function (as add_callback) and a failure function (as
  /// add_errback) returning the same type; only one of them runs. Returns `deferred<U>`.
  /// Throws as add_callback().
  template <class F, class G>
  auto add_callbacks(F&& on_value, G&& on_failure) {
    using F2 = std::decay_t<F>;
    using G2 = std::decay_t<G>;
    using R1 = typename detail::callback_traits<F2, T>::result;
    static_assert(std::is_invocable_v<G2&, const failure&>, "add_callbacks: on_failure must be f(const failure&)");
    using R2 = std::invoke_result_t<G2&, const failure&>;
    static_assert(std::is_same_v<std::remove_cvref_t<R1>, std::remove_cvref_t<R2>>,
                  "add_callbacks: on_failure must return the same type as on_value");
    using U = detail::stage_value_t<R1>;
    return append<U, detail::stage_kind::pair>(
        detail::callback_pair<F2, G2>{std::forward<F>(on_value), std::forward<G>(on_failure)});
  }

  /// Cancels: if unfired, calls the canceller (at most once) or, without one, arranges for the
  /// next callback()/errback() to be ignored; then, if still unfired, errbacks
  /// cancelled_error. If the chain waits on another deferred, cancels that one instead. A
  /// fired chain is left alone.
  /// Throws whatever the canceller throws (the deferred then stays unfired); std::logic_error
  /// for an empty handle or (TWISTLET_CHECKS) use from another thread.
  void cancel() {
    detail::chain_state* s = state();
    TWISTLET_CHECK_OWNER(s->owner, "deferred");
    detail::cancel_chain(s);
  }

  /// Stops the chain from running stages until a matching unpause(). Nests.
  /// Throws std::logic_error for an empty handle or (TWISTLET_CHECKS) use from another thread.
  void pause() {
    detail::chain_state* s = state();
    TWISTLET_CHECK_OWNER(s->owner, "deferred");
    ++s->user_pauses;
  }
  /// Undoes one pause(); the last one resumes the chain if it has fired.
  /// Throws std::logic_error without a matching pause(), for an empty handle or
  /// (TWISTLET_CHECKS) use from another thread.
  void unpause() {
    detail::chain_state* s = state();
    TWISTLET_CHECK_OWNER(s->owner, "deferred");
    detail::unpause_chain(*s);
  }

  /// Appends a timeout (defined in <twistlet/time.hpp>): after `timeout` on `clock` the chain
  /// is cancelled, and a cancelled_error caused by that becomes timeout_error. Stages added
  /// before this call are inside the timeout. The timer is cancelled when the result arrives
  /// first. Returns a handle to the same chain.
  /// Throws as add_callback(), and whatever clock.call_later() throws.
  deferred<T> add_timeout(std::chrono::nanoseconds timeout, reactor_time& clock);

  /// callback() or errback() happened (false for an empty handle).
  bool called() const noexcept { return s_ && s_->called; }
  /// Paused by pause(), or waiting on a deferred returned by one of its stages.
  bool paused() const noexcept { return s_ && (s_->user_pauses > 0 || s_->waiting); }

  // --- For the layers above (the bridge) ----------------------------------------------------

  /// The chain's current result could be taken now: fired, not paused, not waiting on another
  /// deferred, not running its stages, and neither consumed nor handed over.
  bool has_result() const noexcept {
    return s_ && s_->runnable() && s_->result.kind != detail::result_kind::empty;
  }
  /// The chain is running its stages right now (possibly suspended in another tasklet).
  bool chain_running() const noexcept { return s_ && s_->running; }
  /// The chain is running its stages in the calling tasklet (a stage of this very chain, or
  /// of a chain its result flows into, is on the caller's stack).
  bool chain_running_here() const noexcept { return s_ && s_->running && s_->runner == detail::current_tasklet(); }

  /// Attaches a terminal consumer `f(outcome<T>&&)`: when the chain reaches it (at once if
  /// has_result()), `f` receives the result, which counts as handled. From then on the chain
  /// is consumed: any further add_* or consume() through any handle throws std::logic_error.
  /// A cancel() after consume() still delivers (the cancelled_error) to `f`. If `f` throws,
  /// the exception propagates out of whatever call ran the chain (callback(), errback(),
  /// cancel(), an add_*), leaving the chain finished.
  /// Throws as add_callback().
  template <class F>
  void consume(F&& f) {
    static_assert(std::is_invocable_v<std::decay_t<F>&, outcome<T>&&>, "consume: the function must be f(outcome<T>&&)");
    detail::chain_state* s = check_add();
    // Marked first: a consumer that runs at once must already see the chain as consumed.
    s->consumed = true;
    try {
      push_stage<void, detail::stage_kind::consume>(s, std::forward<F>(f));
    } catch (...) {
      s->consumed = false;
      throw;
    }
  }

 private:
  template <class>
  friend class deferred;
  friend struct detail::chain_access;

  struct adopt_tag {};
  deferred(detail::chain_state* s, adopt_tag) noexcept : s_(s) {}

  detail::chain_state* state() const {
    if (!s_) [[unlikely]] detail::throw_empty_handle();
    return s_;
  }
  detail::chain_state* check_fire() const {
    detail::chain_state* s = state();
    TWISTLET_CHECK_OWNER(s->owner, "deferred");
    if (s->head_type != &typeid(T)) [[unlikely]]
      detail::check_type(typeid(T), *s->head_type, "callback");
    return s;
  }
  detail::chain_state* check_add() const {
    detail::chain_state* s = state();
    TWISTLET_CHECK_OWNER(s->owner, "deferred");
    if (s->consumed || s->handed_over) [[unlikely]]
      detail::throw_not_addable(*s);
    if (s->tail_type != &typeid(T)) [[unlikely]]
      detail::check_type(typeid(T), *s->tail_type, "add a stage");
    return s;
  }

  template <class U, detail::stage_kind K, class F>
  void push_stage(detail::chain_state* s, F&& f) {
    using G = std::decay_t<F>;
    using impl = detail::stage_impl<T, U, G, K>;
    using node = typename impl::node;
    void* mem = s->allocate(sizeof(node), alignof(node));
    s->push(::new (mem) node(&impl::ops, std::forward<F>(f)));
    if (s->runnable()) detail::run_chain(s);
  }

  template <class U, detail::stage_kind K, class F>
  deferred<U> append(F&& f) {
    detail::chain_state* s = check_add();
    // The handle is taken first so the chain outlives a stage that drops the last other one.
    ++s->refs;
    deferred<U> next(s, typename deferred<U>::adopt_tag{});
    s->tail_type = &typeid(U);
    try {
      push_stage<U, K>(s, std::forward<F>(f));
    } catch (...) {
      s->tail_type = &typeid(T);
      throw;
    }
    return next;
  }

  detail::chain_state* s_;
};

namespace detail {

/// Internal access for the combinators and the layers above.
struct chain_access {
  template <class T>
  static chain_state* state(const deferred<T>& d) noexcept {
    return d.s_;
  }
  template <class T>
  static deferred<T> adopt(chain_state* s) noexcept {
    return deferred<T>(s, typename deferred<T>::adopt_tag{});
  }
  /// Appends a stage `f(result_slot&)` that sees the result in place and leaves the type alone.
  template <class T, class F>
  static void tap(deferred<T>& d, F&& f) {
    chain_state* s = d.check_add();
    d.template push_stage<T, stage_kind::tap>(s, std::forward<F>(f));
  }
  /// Gives an unfired deferred the canceller `f(deferred<T>&)`, replacing any other.
  template <class T, class F>
  static void set_canceller(deferred<T>& d, F&& f) {
    install_canceller<T>(*d.state(), std::forward<F>(f));
  }
};

template <class D>
chain_state* state_of(const D& d) noexcept {
  return chain_access::state(d);
}

template <class T, class F, bool InArena>
void canceller_box<T, F, InArena>::invoke_fn(canceller_base* self, chain_state* s) {
  ++s->refs;
  deferred<T> d = chain_access::adopt<T>(s);
  std::invoke(static_cast<canceller_box*>(self)->fn, d);
}

}  // namespace detail

// -------------------------------------------------------------------------------------------
// Constructors and helpers.

/// A deferred that has already fired with `value`.
template <class T>
deferred<std::decay_t<T>> succeed(T&& value) {
  deferred<std::decay_t<T>> d;
  d.callback(std::forward<T>(value));
  return d;
}

/// A `deferred<void>` that has already fired.
inline deferred<void> succeed() {
  deferred<void> d;
  d.callback();
  return d;
}

/// A `deferred<T>` that has already failed with `f`.
template <class T = void>
deferred<T> fail(failure f) {
  deferred<T> d;
  d.errback(std::move(f));
  return d;
}

/// Calls `f(args...)` now and returns its result as a `deferred<R>`: a deferred that `f`
/// returns is passed through as itself; a value (or void, or outcome) becomes a fired
/// deferred; an exception becomes a failed one.
template <class F, class... A>
auto maybe_deferred(F&& f, A&&... args) {
  using R = std::invoke_result_t<F, A...>;
  using U = detail::stage_value_t<R>;
  try {
    if constexpr (detail::is_deferred_v<R>) {
      return deferred<U>(std::invoke(std::forward<F>(f), std::forward<A>(args)...));
    } else if constexpr (std::is_void_v<R>) {
      std::invoke(std::forward<F>(f), std::forward<A>(args)...);
      return succeed();
    } else if constexpr (detail::is_outcome<std::remove_cvref_t<R>>::value) {
      auto o = std::invoke(std::forward<F>(f), std::forward<A>(args)...);
      if (!o.has_value()) return fail<U>(o.error());
      if constexpr (std::is_void_v<U>)
        return succeed();
      else
        return succeed(std::move(o).value());
    } else {
      return deferred<U>(succeed(std::invoke(std::forward<F>(f), std::forward<A>(args)...)));
    }
  } catch (...) {
    return fail<U>(failure(std::current_exception()));
  }
}

/// Options of deferred_list().
struct deferred_list_options {
  /// Errback first_error(failure, index) as soon as an input fails.
  bool fire_on_one_errback = false;
  /// Mark input failures handled so the inputs never report them as unhandled. (The inputs
  /// keep their failure; later stages added to them still see it.)
  bool consume_errors = false;
};

namespace detail {
template <class T>
using gathered_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

/// Cancels `w` if it is still alive; a canceller's exception is reported, not thrown, so that
/// the remaining inputs are still cancelled.
void cancel_quietly(const weak_ref& w) noexcept;
}  // namespace detail

/// A deferred that collects the outcome of every input, in input order, once all have fired
/// (a copy for values: each input keeps its result for its own later stages, so T must be
/// copyable). Handlers are attached in input order now, so fired inputs are collected during
/// this call; an empty input fires [] at once. With fire_on_one_errback, the first failure
/// errbacks first_error instead; later completions never fire it again. cancel() of the
/// result (before it fired) cancels every input that has not reached its handler.
/// Throws std::logic_error if an input cannot take a stage (stale, consumed or handed over).
template <class T>
deferred<std::vector<outcome<T>>> deferred_list(std::vector<deferred<T>> ds, deferred_list_options opts = {}) {
  static_assert(std::is_void_v<T> || std::is_copy_constructible_v<T>,
                "deferred_list copies each input's value, so T must be copyable");
  using list = std::vector<outcome<T>>;
  struct aggregate {
    std::vector<std::optional<outcome<T>>> results;
    std::vector<detail::weak_ref> inputs;
    std::size_t remaining = 0;
    deferred_list_options opts;
    std::optional<deferred<list>> result;  // until fired
  };
  auto agg = std::make_shared<aggregate>();
  agg->results.resize(ds.size());
  agg->remaining = ds.size();
  agg->opts = opts;
  for (auto& d : ds) agg->inputs.emplace_back(detail::chain_access::state(d));
  deferred<list> result;
  // The inputs' handlers own the aggregate, which owns the result until it fires; the
  // canceller only observes the aggregate, so nothing forms a cycle.
  agg->result = result;
  detail::chain_access::set_canceller(result, [w = std::weak_ptr<aggregate>(agg)](deferred<list>&) {
    if (auto a = w.lock())
      for (std::size_t i = 0; i < a->inputs.size(); ++i)
        if (!a->results[i]) detail::cancel_quietly(a->inputs[i]);
  });
  if (ds.empty()) {
    agg->result.reset();
    result.callback(list{});
    return result;
  }
  for (std::size_t i = 0; i < ds.size(); ++i) {
    detail::chain_access::tap(ds[i], [agg, i](detail::result_slot& r) {
      aggregate& a = *agg;
      const bool ok = r.kind == detail::result_kind::value;
      if (ok) {
        if constexpr (std::is_void_v<T>)
          a.results[i].emplace();
        else
          a.results[i].emplace(r.template ref<T>());
      } else {
        a.results[i].emplace(r.failure_ref());
        if (a.opts.consume_errors) r.handled = true;
      }
      --a.remaining;
      if (!a.result) return;
      if (!ok && a.opts.fire_on_one_errback) {
        deferred<list> out = std::move(*a.result);
        a.result.reset();
        out.errback(failure::make(first_error(a.results[i]->error(), i)));
      } else if (a.remaining == 0) {
        deferred<list> out = std::move(*a.result);
        a.result.reset();
        list values;
        values.reserve(a.results.size());
        for (auto& o : a.results) values.push_back(std::move(*o));
        out.callback(std::move(values));
      }
    });
  }
  return result;
}

/// deferred_list() of a braced list of handles: `deferred_list({a, b})`.
template <class T>
deferred<std::vector<outcome<T>>> deferred_list(std::initializer_list<deferred<T>> ds, deferred_list_options opts = {}) {
  return deferred_list<T>(std::vector<deferred<T>>(ds), opts);
}

/// A deferred with every input's value in input order (std::monostate for void inputs), or
/// first_error for the first input that fails. `consume_errors` as in deferred_list().
/// cancel() cancels the inputs.
/// Throws as deferred_list().
template <class T>
deferred<std::vector<detail::gathered_t<T>>> gather_results(std::vector<deferred<T>> ds, bool consume_errors = false) {
  using V = detail::gathered_t<T>;
  return deferred_list<T>(std::move(ds), {true, consume_errors})
      .add_callback([](std::vector<outcome<T>> list) {
        std::vector<V> values;
        values.reserve(list.size());
        for (auto& o : list) {
          if constexpr (std::is_void_v<T>)
            values.emplace_back();
          else
            values.push_back(std::move(o).value());
        }
        return values;
      });
}

/// gather_results() of a braced list of handles: `gather_results({a, b})`.
template <class T>
deferred<std::vector<detail::gathered_t<T>>> gather_results(std::initializer_list<deferred<T>> ds,
                                                            bool consume_errors = false) {
  return gather_results<T>(std::vector<deferred<T>>(ds), consume_errors);
}

/// The first input to succeed, as (index, value) (std::monostate for void inputs); the other
/// inputs are cancelled then. If every input fails: all_failed_error with each failure in
/// input order. An empty input fails at once with an empty all_failed_error (rather than never
/// firing). race() takes the inputs over: each is consumed (further stages on them throw
/// std::logic_error) and their failures count as handled. cancel() cancels every input.
/// Throws std::logic_error if an input cannot be consumed (stale, consumed or handed over).
template <class T>
deferred<std::pair<std::size_t, detail::gathered_t<T>>> race(std::vector<deferred<T>> ds) {
  using V = detail::gathered_t<T>;
  using pair = std::pair<std::size_t, V>;
  struct aggregate {
    std::vector<detail::weak_ref> inputs;
    std::vector<std::optional<failure>> failures;
    std::vector<bool> done;
    std::size_t failed = 0;
    std::optional<deferred<pair>> result;  // until fired
  };
  auto agg = std::make_shared<aggregate>();
  agg->failures.resize(ds.size());
  agg->done.resize(ds.size());
  for (auto& d : ds) agg->inputs.emplace_back(detail::chain_access::state(d));
  deferred<pair> result;
  agg->result = result;  // ownership as in deferred_list
  detail::chain_access::set_canceller(result, [w = std::weak_ptr<aggregate>(agg)](deferred<pair>&) {
    if (auto a = w.lock())
      for (std::size_t i = 0; i < a->inputs.size(); ++i)
        if (!a->done[i]) detail::cancel_quietly(a->inputs[i]);
  });
  if (ds.empty()) {
    agg->result.reset();
    result.errback(failure::make(all_failed_error(std::vector<failure>{})));
    return result;
  }
  for (std::size_t i = 0; i < ds.size(); ++i) {
    ds[i].consume([agg, i](outcome<T>&& o) {
      aggregate& a = *agg;
      a.done[i] = true;
      if (o.has_value()) {
        if (!a.result) return;
        deferred<pair> out = std::move(*a.result);
        a.result.reset();
        for (std::size_t j = 0; j < a.inputs.size(); ++j)
          if (!a.done[j]) detail::cancel_quietly(a.inputs[j]);
        if constexpr (std::is_void_v<T>)
          out.callback(pair(i, V{}));
        else
          out.callback(pair(i, std::move(o).value()));
      } else {
        a.failures[i].emplace(o.error());
        if (++a.failed == a.inputs.size() && a.result) {
          std::vector<failure> all;
          all.reserve(a.failures.size());
          for (auto& f : a.failures) all.push_back(*f);
          deferred<pair> out = std::move(*a.result);
          a.result.reset();
          out.errback(failure::make(all_failed_error(std::move(all))));
        }
      }
    });
  }
  return result;
}

/// race() of a braced list of handles: `race({a, b})`.
template <class T>
deferred<std::pair<std::size_t, detail::gathered_t<T>>> race(std::initializer_list<deferred<T>> ds) {
  return race<T>(std::vector<deferred<T>>(ds));
}

}  // namespace twistlet
