// twistlet actor layer: tasklets as CAF actors.
//
// A *hub* attaches a thread's reactor to a caf::actor_system: CAF messages for the actors of
// the hub are delivered in that thread, in the reactor tasklet. On a hub:
//
//   - request<R>(dest, ...) sends a CAF request and returns a deferred<R> that fires in the
//     reactor tasklet, so any tasklet can write `int n = block_on(request<int>(calc, add, 1, 2));`
//   - spawn() starts a *tasklet actor*: a tasklet that is also a CAF actor, with a mailbox it
//     reads by blocking in receive();
//   - spawn_service() starts a *service*: a CAF actor that handles each request in a tasklet of
//     its own, so handlers may block on other requests, deferreds, network I/O or sleep().
//
// Several hubs, one per thread (hub_thread), spread work over cores; they talk to each other
// and to plain CAF actors by messages. publish() and remote_actor() reach actors of other
// processes through CAF's middleman.
//
// Errors that cross a request become exceptions on the requesting side: timeout_error,
// receiver_down_error, unexpected_response_error, remote_error (the other side's exception or
// CAF error, with its message) and request_cycle_error. A request cycle that could never make
// progress (an actor that waits, directly or through others, on a request back to itself) is
// answered with request_cycle_error instead of hanging; docs/actors.md states the rule.
//
// This header includes CAF; <twistlet/twistlet.hpp> does not include it. Its names live in
// namespace twistlet::actor, so refer to CAF's handle type as caf::actor.
#pragma once

#include <twistlet/bridge.hpp>
#include <twistlet/deferred.hpp>
#include <twistlet/failure.hpp>
#include <twistlet/reactor.hpp>
#include <twistlet/tasklet.hpp>
#include <twistlet/time.hpp>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>
#include <caf/atom.hpp>
#include <caf/detail/type_traits.hpp>
#include <caf/error.hpp>
#include <caf/exit_reason.hpp>
#include <caf/fwd.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>
#include <caf/message_view.hpp>
#include <caf/system_messages.hpp>
#include <caf/type_erased_tuple.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace twistlet::actor {

// ---- errors ---------------------------------------------------------------------------------

/// The codes of the CAF errors twistlet sends in responses and uses as exit reasons. Their
/// category is the atom "twistlet" (error_category).
enum class error_code : std::uint8_t {
  /// An exception escaped a request handler or a tasklet actor. Context: the exception's type
  /// name and its what() text, both std::string.
  exception = 1,
  /// The request would close a cycle that can never make progress. Context: the cycle, as a
  /// std::string.
  request_cycle = 2,
  /// The receiver dropped the request without answering (a response_promise destroyed
  /// undelivered). Context: a description, std::string.
  broken_promise = 3,
};

/// The category atom of error_code errors.
inline constexpr caf::atom_value error_category = caf::atom("twistlet");

/// A CAF error with `code`, carrying `message` (and for error_code::exception the exception's
/// `type_name`) as its context.
caf::error make_error(error_code code, std::string message, std::string type_name = {});
/// A CAF error with `code` and a standard message (lets caf::error be built from an
/// error_code, as for CAF's own enums).
caf::error make_error(error_code code);
/// "exception", "request_cycle", "broken_promise".
std::string to_string(error_code code);

/// Makes `cfg`'s actor system render error_code errors readably (actor_system::render, CAF's
/// logs). Optional: twistlet decodes its errors without it.
void configure(caf::actor_system_config& cfg);

/// Base of the exceptions that stand for a CAF error. `error` is the CAF error itself.
struct actor_error : std::runtime_error {
  /// `what` is the readable message; `e` the CAF error it came from (may be empty).
  explicit actor_error(const std::string& what, caf::error e = {});
  /// The CAF error behind this exception.
  caf::error error;
};

/// The receiver of a request is down: it had terminated when the request arrived, or it
/// terminated (or its node became unreachable) before answering (CAF's
/// sec::request_receiver_down, or a down notification while the request was pending).
struct receiver_down_error : actor_error {
  using actor_error::actor_error;
};

/// The response did not have the type the request asked for (or CAF reported
/// sec::unexpected_response). what() names the expected and the received types.
struct unexpected_response_error : actor_error {
  using actor_error::actor_error;
};

/// The other side of a request failed: its handler threw (what() is the exception's message,
/// type_name its type), or it answered with a CAF error (what() renders it; for example
/// "unexpected_message" when no handler matched).
struct remote_error : actor_error {
  /// `type_name` names the exception's type on the other side (empty for a plain CAF error).
  remote_error(const std::string& what, caf::error e, std::string type_name = {});
  /// The type of the exception on the other side, or empty.
  std::string type_name;
};

/// The request would close a cycle of waiting actors that can never make progress: what()
/// names every hop, as in "request cycle: tasklet actor 'a' (#3) -> service 'b' (#4) ->
/// tasklet actor 'a' (#3)".
struct request_cycle_error : actor_error {
  using actor_error::actor_error;
};

/// The failure a CAF error stands for, with the exception types above: request timeouts
/// become timeout_error, sec::request_receiver_down receiver_down_error, error_code errors
/// their own types, exit reasons and every other error remote_error.
/// Throws std::invalid_argument for an empty error.
failure to_failure(const caf::error& e);
/// The CAF error that carries `f` to the other side of a request: request_cycle_error stays a
/// cycle error, remote_error keeps its original type name and message, a killed tasklet
/// (tasklet_exit, tasklet_killed_error) becomes sec::request_receiver_down, anything else
/// error_code::exception with the exception's type name and what().
caf::error to_error(const failure& f);

// ---- options --------------------------------------------------------------------------------

/// How a hub runs.
struct hub_options {
  /// Timeout of requests made without one. Unset: they wait until answered, or until the
  /// receiver is seen to be down.
  std::optional<duration> request_timeout{};
};

/// How to spawn a tasklet actor.
struct actor_options {
  /// Shown in introspection, cycle and deadlock messages; also the CAF actor's name().
  std::string name{};
  /// The tasklet's usable stack bytes (0: the default, see tasklet_options).
  std::size_t stack_size = 0;
};

/// How to spawn a service.
struct service_options {
  /// Shown in introspection and cycle messages; also the CAF actor's name().
  std::string name{};
  /// The most requests handled at once; further ones wait in arrival order. 0: no limit (each
  /// request gets its tasklet at once).
  std::size_t max_concurrency = 0;
  /// Usable stack bytes of each handler tasklet (0: the default).
  std::size_t stack_size = 0;
};

class hub;
class tasklet_actor;
class response_promise;

// ---- type-erased handlers (for the templates below) ----------------------------------------

namespace detail {

class hub_impl;
class tasklet_actor_impl;

template <class T>
struct is_atom_constant : std::false_type {};
template <caf::atom_value V>
struct is_atom_constant<caf::atom_constant<V>> : std::true_type {};

template <class T>
struct is_std_tuple : std::false_type {};
template <class... Ts>
struct is_std_tuple<std::tuple<Ts...>> : std::true_type {};

template <class T>
struct is_chrono_duration : std::false_type {};
template <class Rep, class Period>
struct is_chrono_duration<std::chrono::duration<Rep, Period>> : std::true_type {};

/// A handler taking only a caf::message matches every message.
template <class... Args>
inline constexpr bool is_catch_all =
    sizeof...(Args) == 1 && (std::is_same_v<std::remove_cvref_t<Args>, caf::message> && ...);

/// Element `i` of `xs` as the parameter type `Arg` wants it: atom constants by value, a
/// non-const reference as a mutable reference, by-value parameters moved out (the element is
/// consumed by the handler), const references as they are.
template <class Arg>
decltype(auto) element(caf::type_erased_tuple& xs, std::size_t i) {
  using T = std::remove_cvref_t<Arg>;
  if constexpr (is_atom_constant<T>::value) {
    return T{};
  } else if constexpr (std::is_lvalue_reference_v<Arg> && !std::is_const_v<std::remove_reference_t<Arg>>) {
    return xs.template get_mutable_as<T>(i);
  } else if constexpr (std::is_reference_v<Arg>) {
    return xs.template get_as<T>(i);
  } else {
    return T(std::move(xs.template get_mutable_as<T>(i)));
  }
}

template <class... Ts>
struct first_type {
  using type = void;
};
template <class T, class... Ts>
struct first_type<T, Ts...> {
  using type = T;
};

/// What a handler's return value sends as the response: void nothing (an empty message),
/// caf::message itself, caf::error an error, std::tuple its elements, a deferred what it
/// fires with (block_on in the handler's tasklet), anything else a one-element message.
template <class T>
caf::message to_message(T&& value) {
  using U = std::remove_cvref_t<T>;
  if constexpr (std::is_same_v<U, caf::message>) {
    return std::forward<T>(value);
  } else if constexpr (is_std_tuple<U>::value) {
    return std::apply([](auto&&... xs) { return caf::make_message(std::forward<decltype(xs)>(xs)...); },
                      std::forward<T>(value));
  } else if constexpr (::twistlet::detail::is_deferred_v<U>) {
    using V = typename U::value_type;
    if constexpr (std::is_void_v<V>) {
      ::twistlet::block_on(U(std::forward<T>(value)));
      return caf::message{};
    } else {
      return to_message(::twistlet::block_on(U(std::forward<T>(value))));
    }
  } else {
    return caf::make_message(std::forward<T>(value));
  }
}

template <class F>
using handler_args = typename caf::detail::get_callable_trait<F>::arg_types;

template <class... Args>
bool matches(const caf::type_erased_tuple& xs, caf::detail::type_list<Args...>) noexcept {
  if constexpr (is_catch_all<Args...>)
    return true;
  else
    return xs.template match_elements<std::remove_cvref_t<Args>...>();
}

template <class F, class... Args, std::size_t... I>
caf::message invoke(F& f, caf::message_view& msg, caf::detail::type_list<Args...>, std::index_sequence<I...>) {
  using R = std::invoke_result_t<F&, Args...>;
  auto call = [&]() -> R {
    if constexpr (is_catch_all<Args...>) {
      caf::message whole = msg.move_content_to_message();
      return f(whole);
    } else {
      return f(element<Args>(msg.content(), I)...);
    }
  };
  if constexpr (std::is_void_v<R>) {
    call();
    return caf::message{};
  } else {
    return to_message(call());
  }
}

template <class F, class... Args>
caf::message invoke(F& f, caf::message_view& msg, caf::detail::type_list<Args...> args) {
  return invoke(f, msg, args, std::index_sequence_for<Args...>{});
}

/// A set of message handlers: each is a callable with typed parameters (CAF style: atom
/// constants, values, `caf::message` to take anything); the first whose parameters match a
/// message handles it.
class handler_set {
 public:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  virtual ~handler_set() = default;
  /// The index of the first handler that takes `xs`, or npos.
  virtual std::size_t match(const caf::type_erased_tuple& xs) const noexcept = 0;
  /// Calls handler `i` with the elements of `msg` and returns the response it makes.
  virtual caf::message invoke(std::size_t i, caf::message_view& msg) = 0;
};

/// handler_set over a tuple of handlers (owned values, or references for receive()).
template <class Tuple>
class handler_tuple final : public handler_set {
 public:
  template <class... Fs>
  explicit handler_tuple(Fs&&... fs) : fs_(std::forward<Fs>(fs)...) {}

  std::size_t match(const caf::type_erased_tuple& xs) const noexcept override {
    return match_from<0>(xs);
  }
  caf::message invoke(std::size_t i, caf::message_view& msg) override { return invoke_at<0>(i, msg); }

 private:
  static constexpr std::size_t count = std::tuple_size_v<Tuple>;
  template <std::size_t I>
  using fn_t = std::remove_reference_t<std::tuple_element_t<I, Tuple>>;

  template <std::size_t I>
  std::size_t match_from(const caf::type_erased_tuple& xs) const noexcept {
    if constexpr (I == count) {
      return npos;
    } else {
      if (matches(xs, handler_args<fn_t<I>>{})) return I;
      return match_from<I + 1>(xs);
    }
  }
  template <std::size_t I>
  caf::message invoke_at(std::size_t i, caf::message_view& msg) {
    if constexpr (I == count) {
      throw std::logic_error("twistlet::actor: handler index out of range");
    } else {
      if (i == I) return detail::invoke(std::get<I>(fs_), msg, handler_args<fn_t<I>>{});
      return invoke_at<I + 1>(i, msg);
    }
  }

  Tuple fs_;
};

template <class F>
void check_handler() {
  static_assert(caf::detail::is_callable<std::decay_t<F>>::value,
                "a message handler must be a callable with typed parameters (no auto parameters)");
}

/// The response a pending request turns into its deferred's value.
class pending_base {
 public:
  virtual ~pending_base() = default;
  /// Fires the deferred with `m` (a response that is not an error), or errbacks
  /// unexpected_response_error if `m` does not have the requested type.
  virtual void resolve(caf::message& m) = 0;
  /// Errbacks the deferred.
  virtual void reject(failure f) = 0;
};

/// unexpected_response_error for a response `got` when `want` was asked for.
failure unexpected_response(const caf::message& got, const std::type_info& want);

template <class R>
class pending final : public pending_base {
 public:
  explicit pending(deferred<R> d) : d_(std::move(d)) {}

  void resolve(caf::message& m) override {
    if constexpr (std::is_void_v<R>) {
      if (m.empty())
        d_.callback();
      else
        d_.errback(unexpected_response(m, typeid(void)));
    } else if constexpr (std::is_same_v<R, caf::message>) {
      d_.callback(std::move(m));
    } else if constexpr (is_std_tuple<R>::value) {
      resolve_tuple(m, static_cast<R*>(nullptr));
    } else {
      if (m.match_elements<R>())
        d_.callback(element<R>(m, 0));
      else
        d_.errback(unexpected_response(m, typeid(R)));
    }
  }
  void reject(failure f) override { d_.errback(std::move(f)); }

 private:
  template <class... Ts>
  void resolve_tuple(caf::message& m, std::tuple<Ts...>*) {
    if (m.match_elements<std::remove_cvref_t<Ts>...>())
      take_tuple<Ts...>(m, std::index_sequence_for<Ts...>{});
    else
      d_.errback(unexpected_response(m, typeid(R)));
  }
  template <class... Ts, std::size_t... I>
  void take_tuple(caf::message& m, std::index_sequence<I...>) {
    d_.callback(R(element<Ts>(m, I)...));
  }

  deferred<R> d_;
};

/// The hub of the calling thread. Throws std::logic_error naming `what` if there is none.
hub_impl& current_hub(const char* what);
/// Reserves a request id on `h`.
std::uint64_t next_request_id(hub_impl& h) noexcept;
/// Sends request `id` carrying `msg` to `dest` from the calling tasklet's actor (the hub's
/// gateway for plain tasklets) and files `p` until the response, the timeout, a down
/// notification of `dest`, or cancel_request(). Throws std::invalid_argument for an invalid
/// `dest`.
void start_request(hub_impl& h, std::uint64_t id, const caf::strong_actor_ptr& dest, std::optional<duration> timeout,
                   caf::message msg, std::unique_ptr<pending_base> p);
/// Forgets request `id` (its deferred was cancelled); a late response is dropped.
void cancel_request(hub_impl& h, std::uint64_t id) noexcept;
/// The hub's default request timeout.
std::optional<duration> default_timeout(const hub_impl& h) noexcept;
/// Sends `msg` to `dest` from the calling tasklet's actor, or anonymously.
void send_message(const caf::strong_actor_ptr& dest, caf::message msg);

/// Creates a tasklet actor's CAF actor on `h` (not started yet).
caf::strong_actor_ptr make_tasklet_actor(hub_impl& h, const actor_options& opts);
/// Binds the (paused) tasklet that runs the actor and makes it runnable.
void start_tasklet_actor(const caf::strong_actor_ptr& self, tasklet t);
/// Runs a tasklet actor's body `run(fn, self)` in its tasklet, then terminates the actor
/// with the exit reason the body's end implies.
void run_tasklet_actor(const caf::strong_actor_ptr& self, void (*run)(void* fn, tasklet_actor& self), void* fn);
/// Terminates a tasklet actor whose body never ran (its tasklet was killed or discarded
/// before starting). No-op once it has terminated.
void abandon_tasklet_actor(const caf::strong_actor_ptr& self) noexcept;

/// The function a tasklet actor's tasklet runs. Its destructor terminates the actor if the
/// body never ran, so a kill before the first switch still ends the actor properly.
template <class F>
struct actor_body {
  caf::strong_actor_ptr self;
  F fn;

  actor_body(caf::strong_actor_ptr s, F&& f) : self(std::move(s)), fn(std::move(f)) {}
  actor_body(caf::strong_actor_ptr s, const F& f) : self(std::move(s)), fn(f) {}
  actor_body(actor_body&&) = default;
  actor_body& operator=(actor_body&&) = delete;
  ~actor_body() {
    if (self) abandon_tasklet_actor(self);
  }
  void operator()() {
    run_tasklet_actor(self, [](void* f, tasklet_actor& s) { (*static_cast<F*>(f))(s); }, &fn);
  }
};

/// Creates a service on `h` handling requests with `handlers`.
caf::strong_actor_ptr spawn_service(hub_impl& h, service_options opts, std::unique_ptr<handler_set> handlers);

}  // namespace detail

// ---- hubs -----------------------------------------------------------------------------------

/// Attaches this thread's reactor to a CAF actor system: CAF messages for the hub's actors
/// (tasklet actors, services, and the hub's own gateway that sends the requests of plain
/// tasklets) are delivered in this thread, in the reactor tasklet. One hub per thread; all
/// members but system() belong to that thread.
///
/// While the hub has a pending request or a live actor, it holds a reactor::keep_alive: an
/// answer, or a message from another thread, may still arrive, so block_on() in main
/// outside reactor::run() waits for it instead of reporting a deadlock.
///
/// Destroy the hub before its reactor and its actor system (whose destructor waits for every
/// actor, the hub's included), from a tasklet that is not one of its actors (normally the
/// thread's main tasklet). Destruction kills every tasklet actor (exit reason user_shutdown),
/// stops every service (handlers killed, their requests answered with
/// sec::request_receiver_down), and errbacks the hub's pending requests with cancelled_error.
class hub {
 public:
  /// Attaches this thread's reactor to `sys`.
  /// Throws std::logic_error if the thread has no reactor or already has a hub.
  explicit hub(caf::actor_system& sys, hub_options opts = {});
  /// Kills the hub's tasklet actors, stops its services and errbacks its pending requests
  /// (see the class comment), then detaches from the reactor.
  ~hub();
  hub(const hub&) = delete;
  hub& operator=(const hub&) = delete;

  /// The actor system (any thread).
  caf::actor_system& system() const noexcept;
  /// The reactor that delivers the hub's messages.
  twistlet::reactor& loop() const noexcept;

  /// Spawns a tasklet actor running `body(self)` (`self` is a tasklet_actor&). The tasklet is
  /// appended to the run queue and starts when the scheduler reaches it; messages sent
  /// meanwhile wait in its mailbox. When `body` returns, the actor exits normally (or with
  /// the reason given to quit()); if it is killed (tasklet_exit), with the killer's reason
  /// (exit_reason::kill for tasklet::kill()); if an exception escapes, with an
  /// error_code::exception error carrying its message, which is also reported through the
  /// unhandled-error handler. Monitors and links see that reason.
  /// Throws std::logic_error from another thread than the hub's; std::bad_alloc.
  template <class F>
  caf::actor spawn(F&& body, actor_options opts = {});

  /// Spawns a service: a CAF actor that runs each message in a new tasklet of this hub with
  /// the first of `handlers` whose parameters match (CAF style: `[](add_atom, int a, int b)
  /// { return a + b; }`). A handler may block (block_on, other requests, sleep, network I/O);
  /// its return value is the response (see tasklet_actor::receive for the conversions); an
  /// exception becomes an error_code::exception error carrying its message (remote_error on
  /// the requesting side). A request no handler takes is answered with
  /// sec::unexpected_message; other unmatched messages are dropped. The service lives until
  /// its hub is destroyed or it receives a non-normal exit message (then its running
  /// handlers are killed).
  /// Throws std::logic_error from another thread than the hub's; std::bad_alloc.
  template <class... Fs>
  caf::actor spawn_service(service_options opts, Fs&&... handlers);
  /// spawn_service() with default options.
  template <class F, class... Fs,
            class = std::enable_if_t<!std::is_same_v<std::remove_cvref_t<F>, service_options>>>
  caf::actor spawn_service(F&& handler, Fs&&... handlers);

  /// Requests sent from this hub and not yet answered, timed out or cancelled.
  std::size_t pending_requests() const noexcept;
  /// Tasklet actors and services of this hub that have not terminated.
  std::size_t live_actors() const noexcept;

  /// This thread's hub, or nullptr.
  static hub* current() noexcept;

  /// For the layers above: the implementation.
  detail::hub_impl& impl() const noexcept { return *impl_; }

 private:
  std::unique_ptr<detail::hub_impl> impl_;
};

/// A thread that runs a reactor and a hub until stop() (or destruction): the way to put
/// actors on more cores. Code reaches the thread through post() and call().
class hub_thread {
 public:
  /// Starts the thread and waits until its hub exists.
  explicit hub_thread(caf::actor_system& sys, hub_options opts = {}, reactor_options ropts = {});
  /// stop().
  ~hub_thread();
  hub_thread(const hub_thread&) = delete;
  hub_thread& operator=(const hub_thread&) = delete;

  /// Any thread: runs `fn(hub&)` in a new tasklet of the hub's thread (so it may block). An
  /// exception escaping `fn` is reported through the unhandled-error handler. After stop(),
  /// `fn` is destroyed without running.
  template <class F>
  void post(F&& fn);

  /// Any thread: post()s `fn` and returns a future of its result or exception. Waiting on
  /// the future blocks the calling OS thread: do it outside tasklets (setup in main), never
  /// from the hub's own thread. After stop(), the future holds std::future_error
  /// (broken_promise).
  template <class F>
  auto call(F&& fn) -> std::future<std::invoke_result_t<std::decay_t<F>&, hub&>>;

  /// Any thread but the hub's own: stops the reactor, destroys the hub (see ~hub) and joins.
  /// Idempotent.
  void stop();

  /// The actor system.
  caf::actor_system& system() const noexcept { return sys_; }

 private:
  void post_task(twistlet::detail::unique_task task);

  caf::actor_system& sys_;
  std::mutex mutex_;
  twistlet::reactor* reactor_ = nullptr;  // while the thread's reactor accepts work
  hub* hub_ = nullptr;
  bool stopping_ = false;
  std::thread thread_;
};

// ---- tasklet actors -------------------------------------------------------------------------

/// The running tasklet actor, as its body sees it (`self`). Belongs to the actor's tasklet;
/// valid while the body runs.
class tasklet_actor {
 public:
  tasklet_actor(const tasklet_actor&) = delete;
  tasklet_actor& operator=(const tasklet_actor&) = delete;

  /// The CAF handle of this actor.
  caf::actor handle() const;
  /// Its address (a weak reference).
  caf::actor_addr address() const;
  /// Its CAF actor id.
  caf::actor_id id() const noexcept;
  /// The name given in actor_options.
  const std::string& name() const noexcept;
  /// The tasklet running the actor.
  twistlet::tasklet tasklet() const;
  /// The hub the actor lives on.
  twistlet::actor::hub& home() const noexcept;

  /// Blocks until a message arrives that one of `handlers` takes, and handles it. Messages no
  /// handler takes stay in the mailbox, in order, for later receives (selective receive);
  /// those that arrived first are tried first.
  ///
  /// Each handler is a callable with typed parameters (CAF style): atom constants match by
  /// value, a single `caf::message` parameter takes anything, `caf::down_msg` and
  /// `caf::exit_msg` (with trap_exit) arrive like other messages. If the message is a
  /// request, the handler's return value is the response: void an empty one, caf::message
  /// or caf::error as is, a std::tuple its elements, a deferred what it fires with, anything
  /// else a one-element message; unless the handler took make_response_promise() or
  /// delegated. A handler may block. An exception from a handler answers a pending request
  /// with an error (see to_error) and then propagates out of receive.
  /// Throws tasklet_exit when the actor is killed meanwhile, deadlock_error if nothing else
  /// could run, std::logic_error outside the actor's tasklet.
  template <class... Fs>
  void receive(Fs&&... handlers) {
    (detail::check_handler<Fs>(), ...);
    detail::handler_tuple<std::tuple<Fs&...>> hs(handlers...);
    receive_impl(hs, nullptr);
  }

  /// receive() that gives up after `timeout` (on the hub's reactor): returns true if a
  /// message was handled, false on timeout. A zero timeout only looks at the mailbox.
  /// Throws as receive().
  template <class... Fs>
  bool receive_for(duration timeout, Fs&&... handlers) {
    (detail::check_handler<Fs>(), ...);
    detail::handler_tuple<std::tuple<Fs&...>> hs(handlers...);
    return receive_impl(hs, &timeout);
  }

  /// Messages waiting in the mailbox (including those no receive took so far).
  std::size_t mailbox_size() const noexcept;

  /// Sends `xs...` to `dest` as an asynchronous message from this actor.
  template <class Handle, class... Ts>
  void send(const Handle& dest, Ts&&... xs) {
    detail::send_message(caf::actor_cast<caf::strong_actor_ptr>(dest), caf::make_message(std::forward<Ts>(xs)...));
  }

  /// The sender of the message being handled (null outside a handler, or if anonymous).
  caf::strong_actor_ptr current_sender() const;
  /// Inside a handler of a request: takes over the duty to answer it. The handler's return
  /// value is then ignored; the promise answers later, from any tasklet or thread.
  /// Throws std::logic_error outside a handler, or if the message was no request or was
  /// already answered, promised or delegated.
  response_promise make_response_promise();
  /// Inside a handler of a request: forwards the request as `xs...` to `dest`, which answers
  /// the original requester directly. The handler's return value is then ignored.
  /// Throws as make_response_promise().
  template <class Handle, class... Ts>
  void delegate(const Handle& dest, Ts&&... xs) {
    delegate_impl(caf::actor_cast<caf::strong_actor_ptr>(dest), caf::make_message(std::forward<Ts>(xs)...));
  }

  /// Asks CAF for a caf::down_msg in the mailbox when `whom` terminates (at once if it has).
  void monitor(const caf::actor& whom);
  /// Stops monitoring `whom` (every monitor this actor set on it).
  void demonitor(const caf::actor& whom);
  /// Links this actor and `whom`: when one terminates with a non-normal reason, the other
  /// receives a caf::exit_msg, which (unless trapped) terminates it with the same reason.
  void link_to(const caf::actor& whom);
  /// Removes a link.
  void unlink_from(const caf::actor& whom);
  /// With `on`, exit messages (but exit_reason::kill, which always terminates) arrive in the
  /// mailbox as caf::exit_msg instead of terminating the actor.
  void trap_exit(bool on) noexcept;
  /// Whether exit messages are trapped.
  bool trap_exit() const noexcept;

  /// Ends the actor now with `reason` (default: normal), by raising tasklet_exit in its
  /// tasklet. Throws std::logic_error outside the actor's tasklet.
  [[noreturn]] void quit(caf::error reason = {});

 private:
  friend class detail::tasklet_actor_impl;
  explicit tasklet_actor(detail::tasklet_actor_impl& impl) noexcept : impl_(impl) {}
  bool receive_impl(detail::handler_set& hs, const duration* timeout);
  void delegate_impl(const caf::strong_actor_ptr& dest, caf::message msg);

  detail::tasklet_actor_impl& impl_;
};

/// The duty to answer a request, taken from a handler with make_response_promise(). Movable,
/// not copyable; usable from any thread. Destroyed while still pending, it answers with an
/// error_code::broken_promise error, so the requester is never left waiting.
class response_promise {
 public:
  /// Nothing to answer.
  response_promise() noexcept = default;
  /// Takes over `other`'s duty; `other` is left with nothing to answer.
  response_promise(response_promise&& other) noexcept = default;
  /// Answers the request this promise still holds with error_code::broken_promise, then takes
  /// over `other`'s duty.
  response_promise& operator=(response_promise&& other) noexcept;
  /// Answers a request still pending with error_code::broken_promise.
  ~response_promise();

  /// Not yet answered.
  bool pending() const noexcept { return state_ != nullptr; }

  /// Answers with `xs...` (nothing: an empty response; a caf::error: that error).
  /// Throws std::logic_error if not pending.
  template <class... Ts>
  void deliver(Ts&&... xs) {
    deliver_message(caf::make_message(std::forward<Ts>(xs)...));
  }
  /// Answers with the error `f` stands for (see to_error).
  /// Throws std::logic_error if not pending.
  void deliver_failure(const failure& f);
  /// Forwards the request as `xs...` to `dest`, which answers the requester directly.
  /// Throws std::logic_error if not pending.
  template <class Handle, class... Ts>
  void delegate(const Handle& dest, Ts&&... xs) {
    delegate_message(caf::actor_cast<caf::strong_actor_ptr>(dest), caf::make_message(std::forward<Ts>(xs)...));
  }

  /// Implementation detail.
  struct state;

 private:
  friend class tasklet_actor;
  explicit response_promise(std::unique_ptr<state> s) noexcept;
  void deliver_message(caf::message msg);
  void delegate_message(const caf::strong_actor_ptr& dest, caf::message msg);
  struct state_deleter {
    void operator()(state* s) const noexcept;
  };
  std::unique_ptr<state, state_deleter> state_;
};

// ---- requests -------------------------------------------------------------------------------

/// Sends the request `xs...` to `dest` (a caf::actor, typed actor or strong_actor_ptr) and
/// returns a deferred of its response as an R: void (an empty response), a type T (a
/// one-element response), std::tuple<Ts...>, or caf::message (anything). The deferred fires
/// in the reactor tasklet of the calling thread's hub. The request is sent by the calling
/// tasklet's actor (a tasklet actor, a service handler) or else by the hub's gateway.
///
/// Failures: timeout_error after `timeout`; receiver_down_error when `dest` is or goes down
/// before answering; unexpected_response_error for a response of another type;
/// remote_error for an error answer (the other side's exception, with its message);
/// request_cycle_error for a cycle that could not make progress. cancel() (or killing the
/// tasklet blocked on it) forgets the request: its response is dropped when it arrives.
/// While the request is pending, the hub's reactor counts as having work, so block_on() in
/// main outside reactor::run() does not report a deadlock meanwhile.
///
/// Throws std::logic_error if the thread has no hub; std::invalid_argument for an invalid
/// `dest`.
template <class R, class Handle, class... Ts>
deferred<R> request(const Handle& dest, duration timeout, Ts&&... xs) {
  detail::hub_impl& h = detail::current_hub("request");
  const std::uint64_t id = detail::next_request_id(h);
  deferred<R> d([hp = &h, id](deferred<R>&) { detail::cancel_request(*hp, id); });
  detail::start_request(h, id, caf::actor_cast<caf::strong_actor_ptr>(dest), timeout,
                        caf::make_message(std::forward<Ts>(xs)...), std::make_unique<detail::pending<R>>(d));
  return d;
}

/// request() with the hub's default timeout (hub_options::request_timeout; none by default).
/// Chosen when the first message element is not a std::chrono::duration.
template <class R, class Handle, class... Ts,
          class = std::enable_if_t<
              !detail::is_chrono_duration<std::remove_cvref_t<typename detail::first_type<Ts...>::type>>::value>>
deferred<R> request(const Handle& dest, Ts&&... xs) {
  detail::hub_impl& h = detail::current_hub("request");
  const std::uint64_t id = detail::next_request_id(h);
  deferred<R> d([hp = &h, id](deferred<R>&) { detail::cancel_request(*hp, id); });
  detail::start_request(h, id, caf::actor_cast<caf::strong_actor_ptr>(dest), detail::default_timeout(h),
                        caf::make_message(std::forward<Ts>(xs)...), std::make_unique<detail::pending<R>>(d));
  return d;
}

/// Sends `xs...` to `dest` as an asynchronous message, from the calling tasklet's actor if it
/// runs in one (so the receiver may answer it), else anonymously.
template <class Handle, class... Ts>
void send(const Handle& dest, Ts&&... xs) {
  detail::send_message(caf::actor_cast<caf::strong_actor_ptr>(dest), caf::make_message(std::forward<Ts>(xs)...));
}

// ---- remote actors --------------------------------------------------------------------------

/// Publishes `whom` on TCP `port` (0: any free port) with CAF's middleman, which the actor
/// system must have loaded (`cfg.load<caf::io::middleman>()`). `in` restricts the address
/// listened on (nullptr: all; "127.0.0.1": loopback only); `reuse` sets SO_REUSEADDR. The
/// deferred fires in the calling hub's reactor tasklet with the port actually used.
/// Failures: actor_error with CAF's error (for example the port is taken); std::logic_error
/// if the middleman is not loaded. Throws std::logic_error if the thread has no hub.
deferred<std::uint16_t> publish(const caf::actor& whom, std::uint16_t port, std::string in = {}, bool reuse = false);

/// Connects to the actor published at `host`:`port` and fires with a handle to it (requests
/// to it travel through the middleman). Failures: actor_error with CAF's error (no such
/// host, connection refused, nothing published there).
/// Throws std::logic_error if the thread has no hub.
deferred<caf::actor> remote_actor(std::string host, std::uint16_t port);

// ---- implementation -------------------------------------------------------------------------

template <class F>
caf::actor hub::spawn(F&& body, actor_options opts) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn&, tasklet_actor&>, "hub::spawn: the body must be callable as f(tasklet_actor&)");
  caf::strong_actor_ptr self = detail::make_tasklet_actor(*impl_, opts);
  twistlet::tasklet t(detail::actor_body<Fn>(self, std::forward<F>(body)),
                      tasklet_options{.name = std::move(opts.name), .stack_size = opts.stack_size});
  detail::start_tasklet_actor(self, std::move(t));
  return caf::actor_cast<caf::actor>(std::move(self));
}

template <class... Fs>
caf::actor hub::spawn_service(service_options opts, Fs&&... handlers) {
  static_assert(sizeof...(Fs) > 0, "hub::spawn_service: give at least one handler");
  (detail::check_handler<Fs>(), ...);
  auto hs = std::make_unique<detail::handler_tuple<std::tuple<std::decay_t<Fs>...>>>(std::forward<Fs>(handlers)...);
  return caf::actor_cast<caf::actor>(detail::spawn_service(*impl_, std::move(opts), std::move(hs)));
}

template <class F, class... Fs, class>
caf::actor hub::spawn_service(F&& handler, Fs&&... handlers) {
  return spawn_service(service_options{}, std::forward<F>(handler), std::forward<Fs>(handlers)...);
}

template <class F>
void hub_thread::post(F&& fn) {
  post_task([this, fn = std::forward<F>(fn)]() mutable {
    // The task runs in the reactor tasklet, which must not block: fn gets its own tasklet.
    twistlet::tasklet::spawn([h = hub_, fn = std::move(fn)]() mutable { fn(*h); }, {.name = "hub_thread::post"});
  });
}

template <class F>
auto hub_thread::call(F&& fn) -> std::future<std::invoke_result_t<std::decay_t<F>&, hub&>> {
  using R = std::invoke_result_t<std::decay_t<F>&, hub&>;
  std::promise<R> promise;
  std::future<R> result = promise.get_future();
  post([promise = std::move(promise), fn = std::forward<F>(fn)](hub& h) mutable {
    try {
      if constexpr (std::is_void_v<R>) {
        fn(h);
        promise.set_value();
      } else {
        promise.set_value(fn(h));
      }
    } catch (const tasklet_exit&) {
      throw;
    } catch (...) {
      promise.set_exception(std::current_exception());
    }
  });
  return result;
}

}  // namespace twistlet::actor
