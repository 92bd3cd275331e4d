// The actor layer's implementation (private to framework/actor).
//
// Delivery path. Every twistlet actor is a caf::monitorable_actor with a lock-free inbox (a
// LIFO stack of mailbox elements, as CAF's own mailboxes are). enqueue(), called on whatever
// thread sends, pushes onto it; the push that finds the inbox empty hands the actor to the
// hub_core, which queues it and, once per batch, posts a drain into the reactor. The drain
// runs in the reactor tasklet, takes each queued actor's inbox (reversed into FIFO order) and
// hands the elements to the actor: a tasklet actor files them in its mailbox and wakes its
// tasklet if it waits in receive(); a service starts a handler tasklet per request.
// Responses never go through an inbox: whichever actor sent a request, its response goes
// straight to the hub's table of pending requests, so a request lives independently of the
// tasklet or actor that sent it.
#pragma once

#include <twistlet/actor.hpp>

#include <caf/actor_system.hpp>
#include <caf/attachable.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/monitorable_actor.hpp>
#include <caf/ref_counted.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace twistlet::actor::detail {

using ::twistlet::detail::tasklet_impl;

class hub_actor;

// ---- request chains -------------------------------------------------------------------------

enum class actor_kind : std::uint8_t { gateway, tasklet_actor, service };

/// One handler instance in a request chain that waits for the chain's request: it sent
/// request `request` (an id in its hub's table) while handling the chain's previous request.
struct hop {
  std::uint64_t actor = 0;     // hub_actor::serial(): unique in the process
  std::uint64_t instance = 0;  // 0 for a tasklet actor; the handler number in a service
  std::uint64_t request = 0;
  caf::actor_id caf_id = 0;
  actor_kind kind = actor_kind::tasklet_actor;
  std::string name;
};
using chain = std::vector<hop>;
using chain_ptr = std::shared_ptr<const chain>;

/// The most hops a chain keeps; longer chains drop their oldest hops.
inline constexpr std::size_t max_chain = 64;

/// "tasklet actor 'a' (actor 3)", "service 'b' handler 2 (actor 4)".
std::string describe_hop(const hop& h);

/// A request element that carries its chain. Chains travel with requests inside the process;
/// the middleman serialises only the content, so they end at process borders.
class chained_element final : public caf::mailbox_element {
 public:
  chained_element(caf::strong_actor_ptr sender, caf::message_id mid, forwarding_stack stages, caf::message msg,
                  chain_ptr ch);
  caf::type_erased_tuple& content() override { return msg_; }
  const caf::type_erased_tuple& content() const override { return msg_; }
  caf::message move_content_to_message() override { return std::move(msg_); }
  caf::message copy_content_to_message() const override { return msg_; }
  const chain_ptr& request_chain() const noexcept { return chain_; }

 private:
  caf::message msg_;
  chain_ptr chain_;
};

/// The chain `e` carries, or null.
chain_ptr chain_of(const caf::mailbox_element& e) noexcept;

/// Who the calling tasklet acts as: the actor its requests come from, and the chain of the
/// request it handles (extended by its own hop when it sends).
struct exec_context {
  hub_actor* self = nullptr;
  std::uint64_t instance = 0;
  chain_ptr incoming;
};

// ---- replies --------------------------------------------------------------------------------

/// A message being handled, with what is needed to answer it.
struct reply_target {
  caf::strong_actor_ptr source;
  caf::message_id mid;
  caf::mailbox_element::forwarding_stack stages;
  /// A request (or pipeline stage) that has not been answered, promised or delegated.
  bool open() const noexcept { return mid.is_request() || !stages.empty(); }
};

}  // namespace twistlet::actor::detail

/// What a response_promise holds.
struct twistlet::actor::response_promise::state {
  caf::strong_actor_ptr self;
  detail::reply_target target;
  detail::chain_ptr chain;
};

namespace twistlet::actor::detail {

/// Answers `t` with `msg` from `self`, as CAF does: to the next stage if there is one, else to
/// the source. Leaves `t` answered.
void deliver(const caf::strong_actor_ptr& self, reply_target& t, caf::message msg);
/// Forwards `t`'s request as `msg` to `dest` (carrying `ch` if not null), which answers the
/// source directly. An invalid `dest` answers sec::request_receiver_down. Leaves `t` answered.
void forward(reply_target& t, const caf::strong_actor_ptr& dest, caf::message msg, const chain_ptr& ch);
/// Answers a request element that cannot be handled with `err` (CAF's bouncing).
void bounce_request(caf::mailbox_element& e, const caf::error& err);
/// error_code::exception for an exception that ended an actor (never a receiver-down error).
caf::error exit_error(const failure& f);

// ---- the thread-safe part of a hub ----------------------------------------------------------

class hub_impl;

class hub_core final : public caf::ref_counted {
 public:
  hub_core(twistlet::reactor& r, hub_impl& h) : reactor_(&r), hub_(&h) {}

  /// Any thread: `a`'s inbox went from empty to non-empty.
  void post_ready(caf::strong_actor_ptr a);
  /// Any thread: a response for one of the hub's requests.
  void post_response(caf::mailbox_element_ptr e);
  /// Any thread: a watched actor terminated.
  void post_down(const caf::actor_control_block* key, std::uint64_t generation, caf::error reason);
  /// Hub thread: no more posts reach the reactor; queued items are dropped.
  void close() noexcept;
  /// Hub thread: asks for a drain even if nothing new arrives (after an interrupted drain).
  void request_drain();

  struct down_note {
    const caf::actor_control_block* key;
    std::uint64_t generation;
    caf::error reason;
  };

 private:
  friend class hub_impl;
  void schedule_locked();
  void run_drain();

  std::mutex mutex_;
  twistlet::reactor* reactor_;  // null once closed
  hub_impl* hub_;
  std::vector<caf::strong_actor_ptr> ready_;
  std::vector<caf::mailbox_element_ptr> responses_;
  std::vector<down_note> downs_;
  bool posted_ = false;
};

// ---- actors ---------------------------------------------------------------------------------

/// Base of twistlet's CAF actors.
class hub_actor : public caf::monitorable_actor {
 public:
  hub_actor(caf::actor_config& cfg, hub_impl& h, actor_kind kind, std::string name);
  ~hub_actor() override;

  const char* name() const override;
  /// Any thread.
  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* host) override;
  void on_destroy() override;

  // -- hub thread ----------------------------------------------------------------------------

  /// Hands every element in the inbox to on_message(), in arrival order.
  void drain();
  /// Ends the actor because its hub goes away (or an exit message says so).
  virtual void shutdown(caf::error reason) = 0;

  bool terminated() const noexcept { return terminated_; }
  actor_kind kind() const noexcept { return kind_; }
  std::uint64_t serial() const noexcept { return serial_; }
  const std::string& label() const noexcept { return name_; }
  hub_impl& home() const noexcept { return *hub_; }
  /// The hop this actor (handler `instance` for a service) adds when it sends `request`.
  hop make_hop(std::uint64_t instance, std::uint64_t request) const;
  caf::strong_actor_ptr strong_self() const { return caf::strong_actor_ptr(ctrl()); }

  // Registry links (hub thread).
  hub_actor* reg_prev = nullptr;
  hub_actor* reg_next = nullptr;
  caf::strong_actor_ptr reg_ref;  // the hub's reference while the actor lives

 protected:
  virtual void on_message(caf::mailbox_element_ptr e) = 0;
  /// After a batch of on_message() calls.
  virtual void on_drained() {}
  /// Closes the inbox and bounces what it held.
  void close_inbox() noexcept;
  /// Terminates the CAF actor with `reason` (monitors and links are told) and leaves the hub.
  /// The caller must hold a strong reference.
  void finish(caf::error reason);

  hub_impl* hub_;
  caf::intrusive_ptr<hub_core> core_;

 private:
  std::atomic<caf::mailbox_element*> inbox_{nullptr};
  actor_kind kind_;
  bool terminated_ = false;
  std::uint64_t serial_;
  std::string name_;
};

/// The sender of requests made by plain tasklets. Messages sent to it are dropped (requests
/// answered with sec::unexpected_message).
class gateway final : public hub_actor {
 public:
  gateway(caf::actor_config& cfg, hub_impl& h);
  void shutdown(caf::error reason) override;

 protected:
  void on_message(caf::mailbox_element_ptr e) override;
};

/// The current message of a tasklet actor's handler.
struct frame {
  reply_target target;
  chain_ptr chain;
  frame* outer = nullptr;
};

class tasklet_actor_impl final : public hub_actor {
 public:
  tasklet_actor_impl(caf::actor_config& cfg, hub_impl& h, std::string name);

  void shutdown(caf::error reason) override;

  /// Runs the body in the actor's tasklet and terminates the actor afterwards.
  void run(void (*body)(void* fn, tasklet_actor& self), void* fn);
  /// The tasklet ended (or was discarded) without running the body.
  void abandon() noexcept;
  void bind(twistlet::tasklet t) { task_ = std::move(t); }

  // For tasklet_actor (the actor's tasklet).
  bool receive(handler_set& hs, const duration* timeout);
  std::size_t mailbox_size() const noexcept { return mailbox_size_; }
  frame* current_frame() const noexcept { return frame_; }
  void check_own_tasklet(const char* what) const;
  bool trap_exit = false;
  std::optional<caf::error> exit_reason;  // set by whoever ends the actor
  twistlet::tasklet task() const { return task_; }
  hub* facade() const noexcept;

  // For the mailbox's wait target.
  void forget_waiter() noexcept { waiter_ = nullptr; }

 protected:
  void on_message(caf::mailbox_element_ptr e) override;
  void on_drained() override;

 private:
  class mailbox_wait;

  void append(caf::mailbox_element* e) noexcept;
  void unlink(caf::mailbox_element* prev, caf::mailbox_element* e) noexcept;
  void handle(caf::mailbox_element_ptr e, handler_set& hs, std::size_t i);
  void terminate(caf::error reason);
  void bounce_mailbox() noexcept;
  /// A chain request that arrived while the tasklet was neither waiting in receive() nor
  /// blocked: look again shortly whether it has blocked meanwhile.
  void arm_recheck();
  void recheck();
  bool closes_cycle(const caf::mailbox_element& e) const;
  void refuse_cycle(caf::mailbox_element& e);

  caf::mailbox_element* head_ = nullptr;
  caf::mailbox_element* tail_ = nullptr;
  std::size_t mailbox_size_ = 0;
  tasklet_impl* waiter_ = nullptr;  // blocked in receive()
  bool in_receive_ = false;
  bool timed_out_ = false;
  twistlet::tasklet task_;
  exec_context ctx_;
  frame* frame_ = nullptr;
  delayed_call recheck_;
  duration recheck_delay_{};
};

class service_impl final : public hub_actor {
 public:
  service_impl(caf::actor_config& cfg, hub_impl& h, service_options opts, std::unique_ptr<handler_set> hs);

  void shutdown(caf::error reason) override;
  /// Runs request `e` with handler `index` in the calling (handler) tasklet.
  void run_handler(caf::mailbox_element_ptr& e, std::size_t index, std::uint64_t instance);
  /// A handler tasklet is done (ran, was killed, or never started).
  void handler_done(std::uint64_t instance) noexcept;

 protected:
  void on_message(caf::mailbox_element_ptr e) override;

 private:
  void start(caf::mailbox_element_ptr e, std::size_t index, bool now);
  bool closes_cycle(const caf::mailbox_element& e) const;

  service_options opts_;
  std::unique_ptr<handler_set> handlers_;
  std::uint64_t next_instance_ = 0;
  std::unordered_map<std::uint64_t, twistlet::tasklet> running_;
  std::deque<std::pair<caf::mailbox_element_ptr, std::size_t>> queued_;
  bool stopping_ = false;
};

// ---- the hub --------------------------------------------------------------------------------

class hub_impl {
 public:
  hub_impl(hub& facade, caf::actor_system& sys, twistlet::reactor& r, hub_options opts);
  ~hub_impl();
  hub_impl(const hub_impl&) = delete;
  hub_impl& operator=(const hub_impl&) = delete;

  hub& facade;
  caf::actor_system& sys;
  twistlet::reactor& loop;
  hub_options opts;
  caf::intrusive_ptr<hub_core> core;
  bool closing = false;

  // -- actors --------------------------------------------------------------------------------
  void register_actor(hub_actor& a);
  /// Drops the hub's reference; the caller holds another one.
  void unregister_actor(hub_actor& a) noexcept;
  std::size_t live_count() const noexcept { return live_count_; }
  /// The actor the calling tasklet acts as, or null.
  exec_context* context() noexcept;
  void set_context(const tasklet_impl* t, exec_context* c);
  void clear_context(const tasklet_impl* t) noexcept;
  hub_actor& gateway_actor() const noexcept { return *gateway_; }

  // -- requests ------------------------------------------------------------------------------
  std::uint64_t next_id() noexcept { return ++last_id_; }
  void start(std::uint64_t id, const caf::strong_actor_ptr& dest, std::optional<duration> timeout, caf::message msg,
             std::unique_ptr<pending_base> p);
  void cancel(std::uint64_t id) noexcept;
  std::size_t pending_count() const noexcept { return pending_.size(); }
  /// Whether request `id` of this hub is still waiting for its response.
  bool is_pending(std::uint64_t id) const noexcept { return pending_.count(id) != 0; }
  /// Whether handler `instance` of actor `serial` waits in `c`: it sent a request of the
  /// chain that is still pending. Returns the index of its first such hop, or -1.
  long waits_in(const chain& c, std::uint64_t serial, std::uint64_t instance) const noexcept;

  // -- delivery (hub thread) -----------------------------------------------------------------
  void drain();

 private:
  struct pending_entry {
    std::unique_ptr<pending_base> p;
    delayed_call timer;
    const caf::actor_control_block* dest = nullptr;
  };
  struct watch {
    caf::strong_actor_ptr dest;
    std::size_t count = 0;
    std::uint64_t generation = 0;
  };

  /// Removes request `id`: stops its timer, releases its watch. Null if not pending.
  std::unique_ptr<pending_base> take(std::uint64_t id) noexcept;
  void watch_dest(const caf::strong_actor_ptr& dest);
  void unwatch(const caf::actor_control_block* key) noexcept;
  void on_response(caf::mailbox_element_ptr e);
  void on_down(const hub_core::down_note& d);
  void expire(std::uint64_t id, duration after);
  void update_keep_alive();

  caf::strong_actor_ptr gateway_ptr_;
  hub_actor* gateway_ = nullptr;
  hub_actor* live_head_ = nullptr;
  std::size_t live_count_ = 0;
  std::unordered_map<const tasklet_impl*, exec_context*> contexts_;

  std::uint64_t last_id_ = 0;
  std::uint64_t watch_generation_ = 0;
  std::unordered_map<std::uint64_t, pending_entry> pending_;
  std::unordered_map<const caf::actor_control_block*, watch> watches_;
  std::optional<reactor::keep_alive> keep_alive_;

  // Batches taken from the core; an interrupted drain resumes at the positions.
  std::vector<caf::mailbox_element_ptr> responses_;
  std::vector<hub_core::down_note> downs_;
  std::vector<caf::strong_actor_ptr> ready_;
  std::size_t responses_pos_ = 0;
  std::size_t downs_pos_ = 0;
  std::size_t ready_pos_ = 0;
};

/// Creates actor T on `h`'s actor system and registers it with the system and the hub.
template <class T, class... A>
caf::strong_actor_ptr make_hub_actor(hub_impl& h, A&&... args) {
  caf::actor_config cfg;
  caf::strong_actor_ptr p = caf::make_actor<T, caf::strong_actor_ptr>(h.sys.next_actor_id(), h.sys.node(), &h.sys,
                                                                      cfg, h, std::forward<A>(args)...);
  auto* a = static_cast<T*>(caf::actor_cast<caf::abstract_actor*>(p));
  a->register_at_system();
  h.register_actor(*a);
  return p;
}

template <class T>
T& actor_of(const caf::strong_actor_ptr& p) noexcept {
  return *static_cast<T*>(caf::actor_cast<caf::abstract_actor*>(p));
}

}  // namespace twistlet::actor::detail
