// The non-template half of deferred<T>: firing, running the chain, chaining, cancellation,
// disposal and unhandled-error reporting.
#include <twistlet/deferred.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace twistlet {

first_error::first_error(failure f, std::size_t i)
    : std::runtime_error("input " + std::to_string(i) + " failed: " + f.what()),
      sub_failure(std::move(f)),
      index(i) {}

all_failed_error::all_failed_error(std::vector<failure> fs)
    : std::runtime_error("all " + std::to_string(fs.size()) + " inputs failed"), failures(std::move(fs)) {}

all_failed_error::all_failed_error(const std::string& message) : std::runtime_error(message) {}

namespace {

void default_unhandled_error_handler(const failure& f) {
  std::string text = "Unhandled error in Deferred:\n" + f.what() + "\n";
  std::fputs(text.c_str(), stderr);
}

// Process-wide like Twisted's log observer; the mutex only guards replacing it, since chains on
// different threads may report at the same time.
std::mutex g_handler_mutex;
unhandled_error_handler& handler_slot() {
  static unhandled_error_handler h = default_unhandled_error_handler;
  return h;
}

bool is_exit_signal(const failure& f) noexcept {
  return f.check<tasklet_exit>() || f.check<tasklet_killed_error>();
}

}  // namespace

unhandled_error_handler set_unhandled_error_handler(unhandled_error_handler h) {
  if (!h) h = default_unhandled_error_handler;
  std::lock_guard<std::mutex> lock(g_handler_mutex);
  std::swap(handler_slot(), h);
  return h;
}

void report_unhandled_error(const failure& f) noexcept {
  // Reports come from destructors and from the reactor loop: neither can take an exception.
  try {
    if (is_exit_signal(f)) return;
    unhandled_error_handler h;
    {
      std::lock_guard<std::mutex> lock(g_handler_mutex);
      h = handler_slot();
    }
    h(f);
  } catch (...) {
  }
}

namespace detail {

void result_slot::relocate_from(result_slot& other) noexcept {
  kind = other.kind;
  ops = other.ops;
  handled = other.handled;
  if (other.kind == result_kind::value) {
    if (ops)
      ops->relocate(buf, other.buf);
    else
      std::memcpy(buf, other.buf, result_buffer_size);
  } else if (other.kind == result_kind::failure) {
    ::new (static_cast<void*>(buf)) failure(std::move(other.failure_ref()));
    other.failure_ref().~failure();
  }
  other.kind = result_kind::empty;
  other.ops = nullptr;
}

namespace {

void free_chunks(chain_state& s) noexcept {
  while (arena_chunk* c = s.chunks) {
    s.chunks = c->next;
    ::operator delete(c);
  }
}

// Only valid when no stage record is queued or executing.
void reset_arena(chain_state& s) noexcept {
  free_chunks(s);
  s.arena_pos = s.arena;
  s.arena_end = s.arena + inline_arena_size;
}

// Memory of freed chains, per thread, for new_chain(). Deferreds are single-thread objects,
// so a chain is nearly always freed where it was made; one freed elsewhere just moves to that
// thread's cache. AddressSanitizer builds bypass the cache so that it sees every use after
// free.
#if defined(__SANITIZE_ADDRESS__)
constexpr std::size_t max_cached_chains = 0;
#else
constexpr std::size_t max_cached_chains = 128;
#endif

// Set when this thread's cache has been destroyed (thread exit): chains freed after that go
// straight back to the allocator.
thread_local bool t_chain_cache_closed = false;

struct chain_cache {
  struct block {
    block* next;
  };
  block* head = nullptr;
  std::size_t count = 0;
  chain_cache() = default;
  chain_cache(const chain_cache&) = delete;
  chain_cache& operator=(const chain_cache&) = delete;
  ~chain_cache() {
    t_chain_cache_closed = true;
    while (block* b = head) {
      head = b->next;
      ::operator delete(b, sizeof(chain_state));
    }
  }
};
thread_local chain_cache t_chain_cache;

void free_chain(chain_state* s) noexcept {
  s->~chain_state();
  if constexpr (max_cached_chains != 0) {
    if (!t_chain_cache_closed) {
      chain_cache& c = t_chain_cache;
      if (c.count < max_cached_chains) {
        c.head = ::new (static_cast<void*>(s)) chain_cache::block{c.head};
        ++c.count;
        return;
      }
    }
  }
  ::operator delete(static_cast<void*>(s), sizeof(chain_state));
}

// Chains whose last reference went while another disposal was in progress on this thread.
// Disposing one chain releases the chains its stages refer to; queueing them here instead of
// recursing keeps the stack flat for arbitrarily long chains of chains. Delaying a disposal
// is always safe, so interleaving with other tasklets cannot break it.
thread_local chain_state* t_pending_disposal = nullptr;
thread_local bool t_disposing = false;

void dispose(chain_state* s) noexcept {
  if (s->result.kind == result_kind::failure && !s->result.handled)
    report_unhandled_error(s->result.failure_ref());
  stage_record* r = s->first;
  s->first = s->last = nullptr;
  while (r) {
    stage_record* next = r->next;
    r->ops->destroy(r);
    r = next;
  }
  if (canceller_base* c = std::exchange(s->canceller, nullptr)) destroy_canceller(*s, c);
  s->result.clear();
  free_chunks(*s);
  s->disposed = true;
  if (s->weak == 0) free_chain(s);
}

struct continuation_node : stage_record {
  continuation_node(const stage_ops* o, chain_state* out) noexcept : stage_record(o), outer(out) {}
  chain_state* outer;  // owned until the continuation runs
};

chain_state* run_continuation(stage_record* self, chain_state& inner) noexcept {
  auto* c = static_cast<continuation_node*>(self);
  chain_state* outer = std::exchange(c->outer, nullptr);
  outer->result.relocate_from(inner.result);
  outer->waiting = false;
  outer->chained_to = nullptr;
  return outer;
}

void destroy_continuation(stage_record* self) noexcept {
  auto* c = static_cast<continuation_node*>(self);
  if (chain_state* outer = c->outer) {
    // The inner chain died unfired: the outer can never resume; it stays paused.
    outer->chained_to = nullptr;
    release(outer);
  }
  c->~continuation_node();
}

constexpr stage_ops continuation_ops{&run_continuation, &destroy_continuation};

// Owns a canceller taken out of its chain while it runs; its arena memory stays reserved
// until it is destroyed.
struct canceller_owner {
  chain_state& s;
  canceller_base* c;
  ~canceller_owner() { destroy_canceller(s, c); }
};

struct chain_ref {
  chain_state* s;
  ~chain_ref() { release(s); }
};

}  // namespace

static_assert(sizeof(chain_state) == 256, "keep the chain state within four cache lines");

chain_state* new_chain(const std::type_info* type) {
  if constexpr (max_cached_chains != 0) {
    if (!t_chain_cache_closed) {
      chain_cache& c = t_chain_cache;
      if (chain_cache::block* b = c.head) {
        c.head = b->next;
        --c.count;
        b->~block();
        return ::new (static_cast<void*>(b)) chain_state(type);
      }
    }
  }
  return ::new (::operator new(sizeof(chain_state))) chain_state(type);
}

void* allocate_stage_slow(chain_state& s, std::size_t size, std::size_t align) {
  // Room used by stages that already ran can be reused once nothing is queued or executing
  // and no canceller lives there.
  if (!s.first && !s.running && s.arena_cancellers == 0 && (s.arena_pos != s.arena || s.chunks)) {
    reset_arena(s);
    return s.allocate(size, align);
  }
  const std::size_t bytes = std::max<std::size_t>(512, sizeof(arena_chunk) + size + align);
  auto* c = static_cast<arena_chunk*>(::operator new(bytes));
  c->next = s.chunks;
  c->size = bytes;
  s.chunks = c;
  s.arena_pos = reinterpret_cast<unsigned char*>(c + 1);
  s.arena_end = reinterpret_cast<unsigned char*>(c) + bytes;
  return s.allocate(size, align);
}

void destroy_chain(chain_state* s) noexcept {
  s->next_disposal = t_pending_disposal;
  t_pending_disposal = s;
  if (t_disposing) return;
  t_disposing = true;
  while (chain_state* p = t_pending_disposal) {
    t_pending_disposal = p->next_disposal;
    dispose(p);
  }
  t_disposing = false;
}

void release_weak(chain_state* s) noexcept {
  if (--s->weak == 0 && s->disposed) free_chain(s);
}

void run_chain(chain_state* start) {
  // The chains whose results are flowing outward: a continuation pushes the current chain
  // and switches to the outer one (outer before inner, as in Twisted), so nesting costs heap,
  // not stack. All state is per chain or local to this call, so interleaving with chains run
  // by other tasklets (a stage may switch tasklets) is safe.
  std::vector<chain_state*> below;
  const tasklet_impl* self = current_tasklet();
  ++start->refs;
  start->running = true;
  start->runner = self;
  chain_state* s = start;
  for (;;) {
    if (s->user_pauses != 0 || s->waiting || !s->first) {
      s->running = false;
      if (!s->first && s->arena_cancellers == 0 && (s->arena_pos != s->arena || s->chunks)) reset_arena(*s);
      release(s);
      if (below.empty()) return;
      s = below.back();
      below.pop_back();
      continue;
    }
    stage_record* r = s->first;
    s->first = r->next;
    if (!s->first) s->last = nullptr;
    chain_state* outer;
    try {
      outer = r->ops->run(r, *s);
    } catch (...) {
      r->ops->destroy(r);
      for (;;) {
        s->running = false;
        release(s);
        if (below.empty()) break;
        s = below.back();
        below.pop_back();
      }
      throw;
    }
    r->ops->destroy(r);
    if (outer) {
      if (outer->running) {
        // Its own run loop, further up this stack or in another tasklet, picks it up.
        release(outer);
        continue;
      }
      outer->running = true;
      outer->runner = self;
      below.push_back(s);
      s = outer;
    }
  }
}

void chain_to(chain_state& outer, chain_state* inner, const std::type_info& type) {
  if (!inner) throw std::logic_error("deferred: a stage returned an empty deferred handle");
  if (inner == &outer)
    throw std::logic_error("deferred: a stage returned the deferred it belongs to (it would wait on itself forever)");
  TWISTLET_CHECK_OWNER(inner->owner, "deferred");
  if (inner->consumed)
    throw std::logic_error("deferred: a stage returned a deferred that is already consumed");
  if (inner->handed_over)
    throw std::logic_error("deferred: a stage returned a deferred whose result already went to another deferred");
  if (!same_type(inner->tail_type, &type))
    throw std::logic_error("deferred: a stage returned a stale deferred<" + type_name(type) +
                           "> handle; that chain's result type is " + type_name(*inner->tail_type));
  for (chain_state* p = inner->chained_to; p; p = p->chained_to)
    if (p == &outer) throw std::logic_error("deferred: a stage returned a deferred that waits on this one (a cycle)");
  if (inner->runnable() && !inner->first) {
    // Steal: the inner's result moves here; the inner keeps nothing to report or pass on.
    inner->handed_over = true;
    outer.result.relocate_from(inner->result);
    return;
  }
  void* mem = inner->allocate(sizeof(continuation_node), alignof(continuation_node));
  inner->push(::new (mem) continuation_node(&continuation_ops, &outer));
  ++outer.refs;
  inner->handed_over = true;
  outer.waiting = true;
  outer.chained_to = inner;
}

bool begin_fire_again(chain_state& s) {
  if (s.suppress_already_called) {
    s.suppress_already_called = false;
    return false;
  }
  throw already_called_error("deferred already fired");
}

void fire_failure(chain_state& s, failure f) {
  if (!begin_fire(s)) return;
  s.result.set_failure(std::move(f));
  finish_fire(s);
}

void cancel_chain(chain_state* s) {
  // A fired chain that waits passes the cancel inward, iteratively for deep nesting.
  while (s->called) {
    if (!s->waiting || !s->chained_to) return;
    s = s->chained_to;
  }
  ++s->refs;
  chain_ref hold{s};
  if (canceller_base* c = std::exchange(s->canceller, nullptr)) {
    canceller_owner own{*s, c};
    c->invoke(c, s);
  } else {
    s->suppress_already_called = true;
  }
  if (!s->called) fire_failure(*s, failure::make(cancelled_error()));
}

void unpause_chain(chain_state& s) {
  if (s.user_pauses == 0) throw std::logic_error("deferred::unpause() without a matching pause()");
  if (--s.user_pauses == 0 && s.runnable()) run_chain(&s);
}

void throw_empty_handle() { throw std::logic_error("deferred: empty handle (moved from)"); }

void throw_not_addable(const chain_state& s) {
  if (s.consumed)
    throw std::logic_error("deferred: the chain is consumed (consume() or block_on took its result); no stage can be added");
  throw std::logic_error(
      "deferred: the chain was returned from a stage of another deferred, which took over its result; "
      "no stage can be added");
}

void check_type(const std::type_info& actual, const std::type_info& expected, const char* what) {
  if (actual == expected) return;
  throw std::logic_error(std::string("deferred: cannot ") + what + " through a deferred<" + type_name(actual) +
                         "> handle: the chain's type there is " + type_name(expected));
}

void cancel_quietly(const weak_ref& w) noexcept {
  chain_state* s = w.lock();
  if (!s) return;
  chain_ref hold{s};
  try {
    cancel_chain(s);
  } catch (...) {
    report_unhandled_error(failure(std::current_exception()));
  }
}

}  // namespace detail
}  // namespace twistlet
