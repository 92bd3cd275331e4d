// Tasklet actors: a tasklet with a CAF mailbox it reads by blocking in receive().
#include <caf/default_attachable.hpp>
#include <caf/sec.hpp>

#include "actor/actor_impl.hpp"

namespace twistlet::actor {
namespace detail {

namespace {

caf::mailbox_element* next_of(caf::mailbox_element* e) noexcept { return static_cast<caf::mailbox_element*>(e->next); }

bool is_exit_msg(const caf::mailbox_element& e) noexcept {
  const caf::type_erased_tuple& c = e.content();
  return c.size() == 1 && c.match_element<caf::exit_msg>(0);
}

std::string cycle_text(const chain& c, std::size_t from, const std::string& why) {
  std::string s = "request cycle: ";
  for (std::size_t i = from; i < c.size(); ++i) s += describe_hop(c[i]) + " -> ";
  return s + describe_hop(c[from]) + ": " + why;
}

}  // namespace

/// What a tasklet blocked in receive() waits on.
class tasklet_actor_impl::mailbox_wait final : public ::twistlet::detail::wait_target {
 public:
  explicit mailbox_wait(tasklet_actor_impl& a) noexcept : a_(a) {}
  void abandon(tasklet_impl*) noexcept override { a_.forget_waiter(); }
  std::string describe() const override {
    std::string s = "the mailbox of tasklet actor";
    if (!a_.label().empty()) s += " '" + a_.label() + "'";
    return s + " (actor " + std::to_string(a_.id()) + ", " + std::to_string(a_.mailbox_size()) +
           " unmatched messages)";
  }

 private:
  tasklet_actor_impl& a_;
};

tasklet_actor_impl::tasklet_actor_impl(caf::actor_config& cfg, hub_impl& h, std::string name)
    : hub_actor(cfg, h, actor_kind::tasklet_actor, std::move(name)) {
  ctx_.self = this;
}

hub* tasklet_actor_impl::facade() const noexcept { return &hub_->facade; }

void tasklet_actor_impl::check_own_tasklet(const char* what) const {
  if (!task_ || task_.impl() != ::twistlet::detail::current_tasklet())
    throw std::logic_error(std::string("twistlet::actor::tasklet_actor::") + what +
                           ": called outside the actor's own tasklet");
}

void tasklet_actor_impl::append(caf::mailbox_element* e) noexcept {
  e->next = nullptr;
  if (tail_)
    tail_->next = e;
  else
    head_ = e;
  tail_ = e;
  ++mailbox_size_;
}

void tasklet_actor_impl::unlink(caf::mailbox_element* prev, caf::mailbox_element* e) noexcept {
  caf::mailbox_element* next = next_of(e);
  if (prev)
    prev->next = next;
  else
    head_ = next;
  if (tail_ == e) tail_ = prev;
  e->next = nullptr;
  --mailbox_size_;
}

void tasklet_actor_impl::bounce_mailbox() noexcept {
  while (head_) {
    caf::mailbox_element* e = head_;
    unlink(nullptr, e);
    caf::mailbox_element_ptr p(e);
    bounce_request(*p, caf::make_error(caf::sec::request_receiver_down));
  }
}

// ---- delivery (reactor tasklet) -------------------------------------------------------------

bool tasklet_actor_impl::closes_cycle(const caf::mailbox_element& e) const {
  if (!e.mid.is_request()) return false;
  chain_ptr ch = chain_of(e);
  return ch && hub_->waits_in(*ch, serial(), 0) >= 0;
}

void tasklet_actor_impl::refuse_cycle(caf::mailbox_element& e) {
  chain_ptr ch = chain_of(e);
  const long at = hub_->waits_in(*ch, serial(), 0);
  bounce_request(e, make_error(error_code::request_cycle,
                       cycle_text(*ch, static_cast<std::size_t>(at),
                                  "the tasklet actor waits for the answer to its own request in this chain, so it "
                                  "cannot receive this one")));
}

void tasklet_actor_impl::on_message(caf::mailbox_element_ptr e) {
  if (is_exit_msg(*e)) {
    const caf::exit_msg& em = e->content().get_as<caf::exit_msg>(0);
    const bool kill = em.reason == caf::exit_reason::kill;
    if (!trap_exit || kill) {
      if (em.reason) {
        if (!exit_reason) exit_reason = em.reason;
        if (task_.alive()) task_.kill(true);
      }
      return;
    }
  }
  if (!in_receive_ && closes_cycle(*e)) {
    if (task_.blocked()) {
      refuse_cycle(*e);
      return;
    }
    // Runnable (or paused) now: it may yet block on the chain's request.
    append(e.release());
    arm_recheck();
    return;
  }
  append(e.release());
}

void tasklet_actor_impl::on_drained() {
  // The whole batch is in the mailbox; switch to the actor now, as block_on() does for a
  // response: once it waits again, the reactor finds nothing runnable and goes straight back
  // to its wait, without a poll.
  if (waiter_ && head_) ::twistlet::detail::wake_now(std::exchange(waiter_, nullptr));
}

void tasklet_actor_impl::arm_recheck() {
  if (recheck_.active()) return;
  // Back off so that an actor paused for long does not keep the reactor busy.
  recheck_delay_ = recheck_delay_ == duration::zero() ? std::chrono::microseconds(1)
                                                      : std::min<duration>(recheck_delay_ * 2, std::chrono::seconds(1));
  recheck_ = hub_->loop.call_later(recheck_delay_, [this] { recheck(); });
}

void tasklet_actor_impl::recheck() {
  if (terminated() || in_receive_) {
    recheck_delay_ = duration::zero();
    return;
  }
  bool suspects = false;
  caf::mailbox_element* prev = nullptr;
  for (caf::mailbox_element* e = head_; e;) {
    caf::mailbox_element* next = next_of(e);
    if (closes_cycle(*e)) {
      if (task_.blocked()) {
        unlink(prev, e);
        caf::mailbox_element_ptr p(e);
        refuse_cycle(*p);
        e = next;
        continue;
      }
      suspects = true;
    }
    prev = e;
    e = next;
  }
  if (suspects)
    arm_recheck();
  else
    recheck_delay_ = duration::zero();
}

// ---- receive (the actor's tasklet) ----------------------------------------------------------

bool tasklet_actor_impl::receive(handler_set& hs, const duration* timeout) {
  check_own_tasklet("receive");
  delayed_call timer;
  struct stop_timer {
    delayed_call& t;
    ~stop_timer() {
      if (t.active()) t.cancel();
    }
  } stop{timer};
  timed_out_ = false;
  caf::mailbox_element* prev = nullptr;
  caf::mailbox_element* cur = head_;
  for (;;) {
    for (; cur; prev = cur, cur = next_of(cur)) {
      const std::size_t i = hs.match(cur->content());
      if (i != handler_set::npos) {
        unlink(prev, cur);
        handle(caf::mailbox_element_ptr(cur), hs, i);
        return true;
      }
    }
    if (timeout) {
      if (timed_out_ || *timeout <= duration::zero()) return false;
      if (!timer) {
        timer = hub_->loop.call_later(*timeout, [this] {
          timed_out_ = true;
          if (waiter_) ::twistlet::detail::wake_later(std::exchange(waiter_, nullptr));
        });
      }
    }
    tasklet_impl* self = ::twistlet::detail::current_tasklet();
    waiter_ = self;
    in_receive_ = true;
    mailbox_wait wait(*this);
    try {
      ::twistlet::detail::block_current(wait);
    } catch (...) {
      waiter_ = nullptr;
      in_receive_ = false;
      throw;
    }
    in_receive_ = false;
    // Elements before `prev` were tried already; only newer ones can match.
    cur = prev ? next_of(prev) : head_;
  }
}

void tasklet_actor_impl::handle(caf::mailbox_element_ptr e, handler_set& hs, std::size_t i) {
  frame f;
  f.target.source = e->sender;
  f.target.mid = e->mid;
  f.target.stages = std::move(e->stages);
  f.chain = chain_of(*e);
  f.outer = frame_;
  struct restore {
    tasklet_actor_impl& a;
    frame& f;
    chain_ptr saved;
    ~restore() {
      a.frame_ = f.outer;
      a.ctx_.incoming = std::move(saved);
    }
  } r{*this, f, ctx_.incoming};
  frame_ = &f;
  ctx_.incoming = f.chain;
  try {
    caf::message reply = hs.invoke(i, *e);
    e.reset();
    if (f.target.open()) deliver(strong_self(), f.target, std::move(reply));
  } catch (const tasklet_exit&) {
    if (f.target.open()) deliver(strong_self(), f.target, caf::make_message(caf::make_error(caf::sec::request_receiver_down)));
    throw;
  } catch (...) {
    if (f.target.open()) deliver(strong_self(), f.target, caf::make_message(to_error(failure::current())));
    throw;
  }
}

// ---- life and death -------------------------------------------------------------------------

void tasklet_actor_impl::run(void (*body)(void* fn, tasklet_actor& self), void* fn) {
  const tasklet_impl* me = ::twistlet::detail::current_tasklet();
  hub_->set_context(me, &ctx_);
  tasklet_actor self(*this);
  caf::error reason;
  try {
    body(fn, self);
    if (exit_reason) reason = *exit_reason;
  } catch (const tasklet_exit&) {
    terminate(exit_reason ? *exit_reason : caf::make_error(caf::exit_reason::kill));
    throw;
  } catch (...) {
    failure f = failure::current();
    reason = exit_error(f);
    report_unhandled_error(f);
  }
  terminate(std::move(reason));
}

void tasklet_actor_impl::terminate(caf::error reason) {
  if (terminated()) return;
  if (task_) hub_->clear_context(task_.impl());
  // Everything that belongs to the hub's thread goes now: the last reference to this object
  // may be dropped on any thread.
  if (recheck_.active()) recheck_.cancel();
  recheck_ = delayed_call();
  waiter_ = nullptr;
  ctx_.incoming.reset();
  close_inbox();
  bounce_mailbox();
  task_ = twistlet::tasklet();
  finish(std::move(reason));
}

void tasklet_actor_impl::abandon() noexcept {
  try {
    terminate(exit_reason ? *exit_reason : caf::make_error(caf::exit_reason::kill));
  } catch (...) {
    report_unhandled_error(failure::current());
  }
}

void tasklet_actor_impl::shutdown(caf::error reason) {
  if (!exit_reason) exit_reason = std::move(reason);
  twistlet::tasklet t = task_;
  if (t.alive()) {
    t.kill();
  }
  if (!terminated()) terminate(*exit_reason);
}

// ---- entry points for the templates ---------------------------------------------------------

caf::strong_actor_ptr make_tasklet_actor(hub_impl& h, const actor_options& opts) {
  if (hub::current() != &h.facade) throw std::logic_error("twistlet::actor::hub::spawn: called from another thread than the hub's");
  return make_hub_actor<tasklet_actor_impl>(h, opts.name);
}

void start_tasklet_actor(const caf::strong_actor_ptr& self, tasklet t) {
  actor_of<tasklet_actor_impl>(self).bind(t);
  t.insert();
}

void run_tasklet_actor(const caf::strong_actor_ptr& self, void (*run)(void* fn, tasklet_actor& self), void* fn) {
  actor_of<tasklet_actor_impl>(self).run(run, fn);
}

void abandon_tasklet_actor(const caf::strong_actor_ptr& self) noexcept {
  auto& a = actor_of<tasklet_actor_impl>(self);
  if (!a.terminated()) a.abandon();
}

}  // namespace detail

// ---- tasklet_actor --------------------------------------------------------------------------

caf::actor tasklet_actor::handle() const { return caf::actor_cast<caf::actor>(impl_.strong_self()); }

caf::actor_addr tasklet_actor::address() const { return impl_.address(); }

caf::actor_id tasklet_actor::id() const noexcept { return impl_.id(); }

const std::string& tasklet_actor::name() const noexcept { return impl_.label(); }

twistlet::tasklet tasklet_actor::tasklet() const { return impl_.task(); }

hub& tasklet_actor::home() const noexcept { return *impl_.facade(); }

bool tasklet_actor::receive_impl(detail::handler_set& hs, const duration* timeout) { return impl_.receive(hs, timeout); }

std::size_t tasklet_actor::mailbox_size() const noexcept { return impl_.mailbox_size(); }

caf::strong_actor_ptr tasklet_actor::current_sender() const {
  detail::frame* f = impl_.current_frame();
  return f ? f->target.source : nullptr;
}

namespace {
detail::frame& open_frame(detail::tasklet_actor_impl& a, const char* what) {
  a.check_own_tasklet(what);
  detail::frame* f = a.current_frame();
  if (!f) throw std::logic_error(std::string("twistlet::actor::tasklet_actor::") + what + ": called outside a handler");
  if (!f->target.open())
    throw std::logic_error(std::string("twistlet::actor::tasklet_actor::") + what +
                           ": the message is no request, or it was already answered, promised or delegated");
  return *f;
}
}  // namespace

response_promise tasklet_actor::make_response_promise() {
  detail::frame& f = open_frame(impl_, "make_response_promise");
  auto s = std::make_unique<response_promise::state>();
  s->self = impl_.strong_self();
  s->target = std::move(f.target);
  s->chain = f.chain;
  f.target = detail::reply_target{};
  f.target.mid = caf::make_message_id();
  return response_promise(std::move(s));
}

void tasklet_actor::delegate_impl(const caf::strong_actor_ptr& dest, caf::message msg) {
  detail::frame& f = open_frame(impl_, "delegate");
  detail::forward(f.target, dest, std::move(msg), f.chain);
}

void tasklet_actor::monitor(const caf::actor& whom) {
  if (auto* p = caf::actor_cast<caf::abstract_actor*>(whom))
    p->attach(caf::default_attachable::make_monitor(p->address(), impl_.address()));
}

void tasklet_actor::demonitor(const caf::actor& whom) {
  if (auto* p = caf::actor_cast<caf::abstract_actor*>(whom))
    p->detach(caf::default_attachable::observe_token{impl_.address(), caf::default_attachable::monitor});
}

void tasklet_actor::link_to(const caf::actor& whom) {
  if (auto* p = caf::actor_cast<caf::abstract_actor*>(whom))
    if (p != &impl_) impl_.add_link(p);
}

void tasklet_actor::unlink_from(const caf::actor& whom) {
  if (auto* p = caf::actor_cast<caf::abstract_actor*>(whom))
    if (p != &impl_) impl_.remove_link(p);
}

void tasklet_actor::trap_exit(bool on) noexcept { impl_.trap_exit = on; }

bool tasklet_actor::trap_exit() const noexcept { return impl_.trap_exit; }

void tasklet_actor::quit(caf::error reason) {
  impl_.check_own_tasklet("quit");
  impl_.exit_reason = std::move(reason);
  throw tasklet_exit{};
}

// ---- response_promise -----------------------------------------------------------------------

response_promise::response_promise(std::unique_ptr<state> s) noexcept : state_(s.release()) {}

response_promise& response_promise::operator=(response_promise&& other) noexcept {
  state_ = std::move(other.state_);
  return *this;
}

response_promise::~response_promise() = default;

void response_promise::state_deleter::operator()(state* s) const noexcept {
  if (s->target.open()) {
    try {
      detail::deliver(s->self, s->target,
                      caf::make_message(make_error(error_code::broken_promise,
                                                   "the receiver dropped the request without answering it")));
    } catch (...) {
    }
  }
  delete s;
}

void response_promise::deliver_message(caf::message msg) {
  if (!state_) throw std::logic_error("twistlet::actor::response_promise::deliver: nothing to answer");
  std::unique_ptr<state, state_deleter> s = std::move(state_);
  detail::deliver(s->self, s->target, std::move(msg));
}

void response_promise::deliver_failure(const failure& f) { deliver_message(caf::make_message(to_error(f))); }

void response_promise::delegate_message(const caf::strong_actor_ptr& dest, caf::message msg) {
  if (!state_) throw std::logic_error("twistlet::actor::response_promise::delegate: nothing to answer");
  std::unique_ptr<state, state_deleter> s = std::move(state_);
  detail::forward(s->target, dest, std::move(msg), s->chain);
}

}  // namespace twistlet::actor
