// The net layer's private machinery: error mapping, the registry that closes net objects
// before their io_context's services go away, waits for one Asio completion, FIFO side locks,
// the receive buffer, idle timers, and the implementations of streams, listeners and protocol
// connections.
#pragma once

#include <twistlet/net.hpp>

#include <asio/cancellation_signal.hpp>
#include <asio/execution_context.hpp>
#include <asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace twistlet::net::detail {

using twistlet::detail::tasklet_impl;
using twistlet::detail::wait_target;

// ---- errors --------------------------------------------------------------------------------

/// Why an operation failed: which net::error subclass it throws.
enum class fault : std::uint8_t {
  none,
  eof,         // end_of_stream
  reset,       // connection_reset
  refused,     // connection_refused
  closed,      // connection_closed
  idle,        // idle_timeout
  too_long,    // line_too_long
  resolve,     // resolve_error
  other,       // net::error
};

/// The fault an OS or Asio error code stands for.
fault classify(const std::error_code& ec) noexcept;
/// The exception for `f` (with `ec`) raised by operation `op`.
std::exception_ptr make_exception(fault f, const char* op, const std::error_code& ec);
[[noreturn]] void throw_fault(fault f, const char* op, const std::error_code& ec);
/// throw_fault(classify(ec), op, ec).
[[noreturn]] void throw_error(const char* op, const std::error_code& ec);
inline failure make_failure(fault f, const char* op, const std::error_code& ec) {
  return failure(make_exception(f, op, ec));
}

/// A remembered failure of one direction of a connection, thrown again by every later
/// operation in that direction.
struct sticky {
  fault f = fault::none;
  std::error_code ec;
  explicit operator bool() const noexcept { return f != fault::none; }
  void set(fault nf, const std::error_code& nec) noexcept {
    f = nf;
    ec = nec;
  }
  [[noreturn]] void raise(const char* op) const { throw_fault(f, op, ec); }
};

/// An owning reference to a reference-counted net object (add_ref()/release()), for
/// completion handlers and tasklet functions.
template <class T>
class ref {
 public:
  explicit ref(T* p) noexcept : p_(p) { p_->add_ref(); }
  ref(const ref& o) noexcept : p_(o.p_) {
    if (p_) p_->add_ref();
  }
  ref(ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  ref& operator=(const ref&) = delete;
  ~ref() {
    if (p_) p_->release();
  }
  T* operator->() const noexcept { return p_; }
  T* get() const noexcept { return p_; }

 private:
  T* p_;
};

/// "address:port", with IPv6 addresses in brackets.
std::string to_string(const tcp_endpoint& ep);
/// `what`, the endpoint, `suffix`: names an operation on an address in messages.
std::string describe(const char* what, const tcp_endpoint& ep, const char* suffix);

// ---- the registry --------------------------------------------------------------------------

class registry;

/// A net object with Asio I/O objects inside. When the reactor (its io_context) is destroyed,
/// the registry calls on_shutdown() before the socket services shut down, so the object can
/// drop its sockets while that is still safe; afterwards its operations fail as closed.
class io_object {
 public:
  io_object(const io_object&) = delete;
  io_object& operator=(const io_object&) = delete;
  virtual void on_shutdown() noexcept = 0;

 protected:
  /// Registers with the registry of `ctx`, creating it on first use. Call after the object's
  /// first Asio I/O object exists, so that the registry is younger than the socket services
  /// (Asio shuts the youngest service down first).
  io_object() noexcept = default;
  void enlist(asio::io_context& ctx);
  ~io_object();

 private:
  friend class registry;
  registry* reg_ = nullptr;
  io_object* prev_ = nullptr;
  io_object* next_ = nullptr;
};

class registry final : public asio::execution_context::service {
 public:
  using key_type = registry;
  static asio::execution_context::id id;
  explicit registry(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}
  void add(io_object* o) noexcept;
  void remove(io_object* o) noexcept;
  void shutdown() override;

 private:
  io_object* head_ = nullptr;
};

// ---- waiting -------------------------------------------------------------------------------

/// Blocks the current tasklet on `w` until someone wakes it (`waiter` is set to the tasklet so
/// the waker can find it), or, in a main tasklet outside reactor::run(), drives `r` until
/// `done()` (`waiter` stays null: nobody must wake main). Errors: whatever the wait throws;
/// in the driven case `w.abandon()` has then been called, as a kill would.
template <class Done>
void park(reactor& r, wait_target& w, tasklet_impl*& waiter, Done done);

/// One Asio operation a tasklet waits for: a transfer (data moves into a buffer the waiter
/// owns) or a readiness wait (nothing moves until the waiter reads itself).
///
/// Cancellation: abandon() (a kill) emits a terminal cancellation to the operation. A
/// readiness wait is then simply forgotten (its late completion is recognised as stale by the
/// generation number). A transfer becomes an orphan: the kernel may already have moved data
/// into the waiter's buffer, so the completion is still awaited and decides what to do with it
/// (see stream_impl).
class io_op final : public wait_target {
 public:
  enum class state : std::uint8_t { idle, pending, done, orphaned };

  explicit io_op(const char* what) noexcept : what_(what) {}

  /// Starts a new operation; returns its generation for the completion handler.
  std::uint32_t begin(bool transfer) noexcept {
    st = state::pending;
    transfer_ = transfer;
    ec = {};
    n = 0;
    return ++gen;
  }
  /// The completion of generation `g`: false if stale (a forgotten readiness wait).
  bool current(std::uint32_t g) const noexcept { return g == gen && st != state::idle; }
  /// Records a completion and wakes the waiter (at once, as block_on does).
  void complete(const std::error_code& e, std::size_t bytes);
  /// Wakes a tasklet waiting for an orphan to settle.
  void settle();

  void abandon(tasklet_impl* t) noexcept override;
  std::string describe() const override;

  /// Clears the cancellation handler Asio installed, whose target is about to go away.
  void forget_slot() noexcept { signal.slot().clear(); }

  state st = state::idle;
  std::uint32_t gen = 0;
  tasklet_impl* waiter = nullptr;
  std::error_code ec;
  std::size_t n = 0;
  asio::cancellation_signal signal;

 private:
  const char* what_;
  bool transfer_ = false;
};

/// Serves the callers of one direction (reads, or writes) one whole call at a time, in
/// arrival order. The queue nodes live on the waiters' stacks.
class side_lock final : public wait_target {
 public:
  explicit side_lock(const char* what) noexcept : what_(what) {}
  /// Takes the lock, blocking behind earlier callers.
  /// Errors: as park().
  void acquire(reactor& r);
  /// Hands the lock to the next caller in line (it runs when the scheduler reaches it).
  void release() noexcept;
  bool held() const noexcept { return held_; }

  void abandon(tasklet_impl* t) noexcept override;
  std::string describe() const override;

 private:
  struct node {
    tasklet_impl* t = nullptr;  // null: the main tasklet driving the reactor
    bool granted = false;
    bool linked = false;
    node* next = nullptr;
  };
  void unlink(node* n) noexcept;

  const char* what_;
  bool held_ = false;
  node* head_ = nullptr;
  node* tail_ = nullptr;
};

/// Releases a side_lock at scope exit.
class side_guard {
 public:
  side_guard(side_lock& l, reactor& r) : l_(l) { l_.acquire(r); }
  ~side_guard() { l_.release(); }
  side_guard(const side_guard&) = delete;
  side_guard& operator=(const side_guard&) = delete;

 private:
  side_lock& l_;
};

/// Throws reactor_blocked_error if called in `r`'s reactor tasklet (the thread's own reactor:
/// net objects are single-thread objects).
void check_may_block(reactor& r, const char* what);

// ---- the receive buffer --------------------------------------------------------------------

/// Bytes received and not yet read. Memory is held only while bytes are.
class recv_buffer {
 public:
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  const char* data() const noexcept { return mem_.get() + begin_; }
  void consume(std::size_t k) noexcept {
    begin_ += k;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// Copies up to `len` bytes to `out` and consumes them; returns the count.
  std::size_t take(char* out, std::size_t len) noexcept;
  /// At least `want` writable bytes after the data; returns where they start.
  char* prepare(std::size_t want);
  std::size_t room() const noexcept { return cap_ - end_; }
  void commit(std::size_t k) noexcept { end_ += k; }
  void append(const char* p, std::size_t k) {
    std::memcpy(prepare(k), p, k);
    commit(k);
  }
  /// Puts `k` bytes back in front of the data.
  void prepend(const char* p, std::size_t k);
  /// Frees the memory if no bytes are held.
  void trim() noexcept {
    if (empty()) {
      mem_.reset();
      cap_ = 0;
    }
  }
  void clear() noexcept {
    mem_.reset();
    cap_ = begin_ = end_ = 0;
  }

 private:
  std::unique_ptr<char[]> mem_;
  std::size_t cap_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// ---- idle timers ---------------------------------------------------------------------------

/// Closes a connection that receives nothing for a while. Arrivals only note the time (one
/// clock read); the timer re-arms itself when it fires early, so busy connections cost one
/// timer per timeout period.
class idle_watch {
 public:
  /// (Re)starts watching; `expire()` runs in the reactor tasklet on expiry.
  void start(reactor& r, duration timeout, std::function<void()> expire);
  void stop() noexcept;
  void note_activity() noexcept {
    if (timeout_ > duration::zero()) last_ = clock_->now();
  }
  duration timeout() const noexcept { return timeout_; }

 private:
  void arm(time_point due);
  reactor* clock_ = nullptr;
  duration timeout_ = duration::zero();
  time_point last_{};
  delayed_call call_;
  std::function<void()> expire_;
};

/// The intrusive reference count of an implementation object: handles and pending operations
/// hold references, and the last one deletes it.
template <class Derived>
class ref_counted {
 public:
  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete static_cast<Derived*>(this);
  }

 private:
  std::uint32_t refs_ = 1;
};

/// A ref_counted object shared by user handles: the last handle closes it (Derived::close()),
/// while operations still pending keep it alive until they have finished.
template <class Derived>
class handle_counted : public ref_counted<Derived> {
 public:
  void add_handle() noexcept {
    ++handles_;
    this->add_ref();
  }
  void drop_handle() noexcept {
    if (--handles_ == 0) static_cast<Derived*>(this)->close();
    this->release();
  }

 private:
  std::uint32_t handles_ = 0;
};

// ---- streams -------------------------------------------------------------------------------

/// A connected TCP stream (behind net::stream handles).
class stream_impl final : public io_object, public handle_counted<stream_impl> {
 public:
  stream_impl(reactor& r, asio::ip::tcp::socket&& s, const connect_options& opts);
  ~stream_impl();

  std::size_t read_some(char* p, std::size_t len);
  void read_exactly(char* p, std::size_t len);
  std::string read_line(std::size_t max_length);
  void write(const char* p, std::size_t len);
  void shutdown_write();
  void close() noexcept;
  void set_idle_timeout(duration timeout);
  duration idle_timeout() const noexcept { return idle_.timeout(); }
  bool is_open() const noexcept { return sock_.has_value() && sock_->is_open(); }
  std::size_t buffered() const noexcept { return buf_.size(); }
  const tcp_endpoint& local() const noexcept { return local_; }
  const tcp_endpoint& remote() const noexcept { return remote_; }
  asio::ip::tcp::socket& socket();
  /// Takes the socket out (the stream is closed afterwards); for a fresh stream only.
  asio::ip::tcp::socket release_socket();
  reactor& get_reactor() const noexcept { return r_; }
  void check_thread() const { TWISTLET_CHECK_OWNER(owner_, "net::stream"); }

  void on_shutdown() noexcept override;

 private:
  struct read_handler;
  struct write_handler;

  /// The checks every blocking operation starts with.
  void enter(const char* op);
  std::size_t read_into(char* p, std::size_t len, const char* op);
  void fill(const char* op);
  void wait_readable(const char* op);
  void settle_reads();
  void settle_writes();
  void on_read(std::uint32_t gen, const std::error_code& ec, std::size_t n);
  void on_write(std::uint32_t gen, const std::error_code& ec, std::size_t n);
  [[noreturn]] void read_failed(const std::error_code& ec, const char* op);
  [[noreturn]] void closed_error(const char* op);
  void expire_idle();

  reactor& r_;
  std::optional<asio::ip::tcp::socket> sock_;
  tcp_endpoint local_;
  tcp_endpoint remote_;
  const void* owner_;

  recv_buffer buf_;
  std::size_t scanned_ = 0;   // leading buffered bytes known to hold no '\n'
  bool speculate_ = true;     // the last read filled its buffer: more is probably waiting
  sticky read_fail_;
  sticky write_fail_;
  bool write_shut_ = false;
  side_lock read_lock_{"net::stream read"};
  side_lock write_lock_{"net::stream write"};
  io_op read_op_{"net::stream read"};
  io_op write_op_{"net::stream write"};
  char* read_target_ = nullptr;            // where an orphaned read's data is
  std::unique_ptr<char[]> rescue_;          // a copy of a killed reader's buffer
  std::size_t write_sent_ = 0;              // bytes of the current write already sent
  idle_watch idle_;
};

// ---- listeners -----------------------------------------------------------------------------

/// A listening socket and what it runs per connection.
class listener_impl final : public io_object, public ref_counted<listener_impl> {
 public:
  listener_impl(reactor& r, const tcp_endpoint& local, const listen_options& opts, bool dual_stack);
  ~listener_impl();

  void serve(connection_handler handler);
  void serve(std::shared_ptr<protocol_factory> factory);
  void close() noexcept;
  bool is_open() const noexcept { return acceptor_.has_value() && acceptor_->is_open(); }
  const tcp_endpoint& local() const noexcept { return local_; }
  std::size_t connection_count() const noexcept { return live_; }
  /// A connection accepted here has ended.
  void connection_ended() noexcept { --live_; }

  void on_shutdown() noexcept override;

 private:
  struct connection_task;
  void accept();
  void on_accept(const std::error_code& ec, asio::ip::tcp::socket socket);
  void start_tasklet(asio::ip::tcp::socket socket);
  void start_protocol(asio::ip::tcp::socket socket);

  reactor& r_;
  std::optional<asio::ip::tcp::acceptor> acceptor_;
  tcp_endpoint local_;
  listen_options opts_;
  connection_handler handler_;
  std::shared_ptr<protocol_factory> factory_;
  std::size_t live_ = 0;
  delayed_call retry_;
};

// ---- protocols -----------------------------------------------------------------------------

/// One connection driven by a protocol: reads wait for readiness and go through one buffer
/// per thread, so an idle connection holds no buffer; writes go out at once where the kernel
/// takes them and queue otherwise.
class protocol_conn final : public io_object, public ref_counted<protocol_conn> {
 public:
  protocol_conn(reactor& r, asio::ip::tcp::socket&& s, bool no_delay, listener_impl* owner);
  ~protocol_conn();

  /// Attaches `p`, calls connection_made() and starts reading. If connection_made() throws,
  /// the connection is aborted and the failure returned (connection_lost follows).
  std::optional<failure> start(std::shared_ptr<protocol> p, duration idle_timeout);

  void write(std::string_view data);
  void lose();
  void abort();
  bool connected() const noexcept { return state_ == state::open; }
  std::size_t pending() const noexcept { return state_ == state::closed ? 0 : out_.size() + inflight_.size(); }
  void set_idle_timeout(duration timeout);
  const tcp_endpoint& local() const noexcept { return local_; }
  const tcp_endpoint& remote() const noexcept { return remote_; }

  void on_shutdown() noexcept override;

 private:
  enum class state : std::uint8_t { open, closing, closed };
  struct handler;
  void arm_read();
  void on_readable(const std::error_code& ec);
  void start_write();
  void on_written(const std::error_code& ec);
  void finish(failure reason);
  void deliver_lost(const failure& reason) noexcept;
  /// Runs a protocol callback; on an exception, reports it, aborts the connection with it and
  /// returns false.
  template <class F>
  bool call(F&& f);

  reactor& r_;
  std::optional<asio::ip::tcp::socket> sock_;
  tcp_endpoint local_;
  tcp_endpoint remote_;
  listener_impl* owner_;
  std::shared_ptr<protocol> proto_;
  state state_ = state::open;
  std::optional<failure> closing_reason_;
  bool writing_ = false;
  std::string out_;
  std::string inflight_;
  idle_watch idle_;
};

// ---- park ----------------------------------------------------------------------------------

void drive(reactor& r, const std::function<bool()>& done);

template <class Done>
void park(reactor& r, wait_target& w, tasklet_impl*& waiter, Done done) {
  tasklet_impl* self = twistlet::detail::current_tasklet();
  if (twistlet::detail::is_main(self) && !r.running()) {
    try {
      drive(r, std::function<bool()>(done));
    } catch (...) {
      w.abandon(self);
      throw;
    }
    return;
  }
  waiter = self;
  twistlet::detail::block_current(w);
}

}  // namespace twistlet::net::detail
