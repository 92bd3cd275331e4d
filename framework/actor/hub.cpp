// Hubs: delivery of CAF messages into a reactor thread, pending requests, the gateway.
#include <caf/default_attachable.hpp>
#include <caf/make_actor.hpp>
#include <caf/sec.hpp>

#include <algorithm>

#include "actor/actor_impl.hpp"

namespace twistlet::actor {
namespace detail {

namespace {

thread_local hub* t_hub = nullptr;
std::atomic<std::uint64_t> g_next_serial{1};

// The inbox of a terminated actor holds this marker; it is never dereferenced.
alignas(64) char g_closed_tag;
caf::mailbox_element* closed_marker() noexcept { return reinterpret_cast<caf::mailbox_element*>(&g_closed_tag); }

caf::mailbox_element* next_of(caf::mailbox_element* e) noexcept { return static_cast<caf::mailbox_element*>(e->next); }

// The inbox is a stack (newest first); messages are handled in arrival order.
caf::mailbox_element* arrival_order(caf::mailbox_element* newest_first) noexcept {
  caf::mailbox_element* fifo = nullptr;
  while (newest_first) {
    caf::mailbox_element* next = next_of(newest_first);
    newest_first->next = fifo;
    fifo = newest_first;
    newest_first = next;
  }
  return fifo;
}

// Token subtype of watch attachables (CAF uses 0..3 for its own).
constexpr std::size_t watch_token = 0x74776c74;

// Tells a hub that an actor it sent requests to has terminated.
class watch_attachable final : public caf::attachable {
 public:
  watch_attachable(caf::intrusive_ptr<hub_core> core, const caf::actor_control_block* key, std::uint64_t generation)
      : core_(std::move(core)), key_(key), generation_(generation) {}
  void actor_exited(const caf::error& reason, caf::execution_unit*) override {
    core_->post_down(key_, generation_, reason ? reason : caf::make_error(caf::exit_reason::normal));
  }
  bool matches(const token& what) override { return what.subtype == watch_token && what.ptr == core_.get(); }

 private:
  caf::intrusive_ptr<hub_core> core_;
  const caf::actor_control_block* key_;
  std::uint64_t generation_;
};

}  // namespace

// ---- chains ---------------------------------------------------------------------------------

std::string describe_hop(const hop& h) {
  std::string s;
  switch (h.kind) {
    case actor_kind::tasklet_actor:
      s = "tasklet actor";
      break;
    case actor_kind::service:
      s = "service";
      break;
    case actor_kind::gateway:
      s = "hub gateway";
      break;
  }
  if (!h.name.empty()) s += " '" + h.name + "'";
  if (h.kind == actor_kind::service) s += " handler " + std::to_string(h.instance);
  return s + " (actor " + std::to_string(h.caf_id) + ")";
}

chained_element::chained_element(caf::strong_actor_ptr sender, caf::message_id mid, forwarding_stack stages,
                                 caf::message msg, chain_ptr ch)
    : caf::mailbox_element(std::move(sender), mid, std::move(stages)), msg_(std::move(msg)), chain_(std::move(ch)) {}

chain_ptr chain_of(const caf::mailbox_element& e) noexcept {
  if (const auto* c = dynamic_cast<const chained_element*>(&e)) return c->request_chain();
  return nullptr;
}

// ---- replies --------------------------------------------------------------------------------

void deliver(const caf::strong_actor_ptr& self, reply_target& t, caf::message msg) {
  if (!t.stages.empty()) {
    caf::strong_actor_ptr next = std::move(t.stages.back());
    t.stages.pop_back();
    next->enqueue(caf::make_mailbox_element(std::move(t.source), t.mid, std::move(t.stages), std::move(msg)), nullptr);
  } else if (t.source && t.mid.is_request()) {
    t.source->enqueue(caf::make_mailbox_element(self, t.mid.response_id(), {}, std::move(msg)), nullptr);
  }
  t.source = nullptr;
  t.stages.clear();
  t.mid = caf::make_message_id();
}

void forward(reply_target& t, const caf::strong_actor_ptr& dest, caf::message msg, const chain_ptr& ch) {
  if (!dest) {
    deliver(nullptr, t, caf::make_message(caf::make_error(caf::sec::request_receiver_down)));
    return;
  }
  caf::mailbox_element_ptr e;
  if (ch)
    e.reset(new chained_element(std::move(t.source), t.mid, std::move(t.stages), std::move(msg), ch));
  else
    e = caf::make_mailbox_element(std::move(t.source), t.mid, std::move(t.stages), std::move(msg));
  dest->enqueue(std::move(e), nullptr);
  t.source = nullptr;
  t.stages.clear();
  t.mid = caf::make_message_id();
}

void bounce_request(caf::mailbox_element& e, const caf::error& err) {
  if (!e.mid.is_request() || !e.sender) return;
  e.sender->enqueue(caf::make_mailbox_element(nullptr, e.mid.response_id(), {}, err), nullptr);
}

// ---- hub_core -------------------------------------------------------------------------------

void hub_core::schedule_locked() {
  if (posted_ || !reactor_) return;
  posted_ = true;
  reactor_->post_from_thread([core = caf::intrusive_ptr<hub_core>(this)] { core->run_drain(); });
}

void hub_core::post_ready(caf::strong_actor_ptr a) {
  std::lock_guard lock(mutex_);
  if (!reactor_) return;
  ready_.push_back(std::move(a));
  schedule_locked();
}

void hub_core::post_response(caf::mailbox_element_ptr e) {
  std::lock_guard lock(mutex_);
  if (!reactor_) return;
  responses_.push_back(std::move(e));
  schedule_locked();
}

void hub_core::post_down(const caf::actor_control_block* key, std::uint64_t generation, caf::error reason) {
  std::lock_guard lock(mutex_);
  if (!reactor_) return;
  downs_.push_back({key, generation, std::move(reason)});
  schedule_locked();
}

void hub_core::request_drain() {
  std::lock_guard lock(mutex_);
  schedule_locked();
}

void hub_core::close() noexcept {
  std::vector<caf::strong_actor_ptr> ready;
  std::vector<caf::mailbox_element_ptr> responses;
  {
    std::lock_guard lock(mutex_);
    reactor_ = nullptr;
    hub_ = nullptr;
    ready.swap(ready_);
    responses.swap(responses_);
    downs_.clear();
  }
}

void hub_core::run_drain() {
  hub_impl* h;
  {
    std::lock_guard lock(mutex_);
    h = hub_;
  }
  if (h) h->drain();
}

// ---- hub_actor ------------------------------------------------------------------------------

hub_actor::hub_actor(caf::actor_config& cfg, hub_impl& h, actor_kind kind, std::string name)
    : caf::monitorable_actor(cfg),
      hub_(&h),
      core_(h.core),
      kind_(kind),
      serial_(g_next_serial.fetch_add(1, std::memory_order_relaxed)),
      name_(std::move(name)) {}

hub_actor::~hub_actor() = default;

const char* hub_actor::name() const {
  if (!name_.empty()) return name_.c_str();
  switch (kind_) {
    case actor_kind::tasklet_actor:
      return "twistlet_tasklet_actor";
    case actor_kind::service:
      return "twistlet_service";
    case actor_kind::gateway:
      break;
  }
  return "twistlet_gateway";
}

void hub_actor::enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) {
  if (!what) return;
  if (what->mid.is_response()) {
    core_->post_response(std::move(what));
    return;
  }
  caf::mailbox_element* e = what.release();
  caf::mailbox_element* head = inbox_.load(std::memory_order_acquire);
  for (;;) {
    if (head == closed_marker()) {
      caf::mailbox_element_ptr back(e);
      bounce_request(*back, caf::make_error(caf::sec::request_receiver_down));
      return;
    }
    e->next = head;
    if (inbox_.compare_exchange_weak(head, e, std::memory_order_acq_rel, std::memory_order_acquire)) break;
  }
  if (head == nullptr) core_->post_ready(strong_self());
}

void hub_actor::close_inbox() noexcept {
  caf::mailbox_element* head = inbox_.exchange(closed_marker(), std::memory_order_acq_rel);
  if (head == closed_marker()) return;
  caf::mailbox_element* fifo = arrival_order(head);
  while (fifo) {
    caf::mailbox_element_ptr e(fifo);
    fifo = next_of(fifo);
    e->next = nullptr;
    bounce_request(*e, caf::make_error(caf::sec::request_receiver_down));
  }
}

void hub_actor::drain() {
  if (terminated_) return;
  caf::mailbox_element* fifo = arrival_order(inbox_.exchange(nullptr, std::memory_order_acq_rel));
  while (fifo) {
    caf::mailbox_element_ptr e(fifo);
    fifo = next_of(fifo);
    e->next = nullptr;
    if (terminated_) {
      bounce_request(*e, caf::make_error(caf::sec::request_receiver_down));
      continue;
    }
    try {
      on_message(std::move(e));
    } catch (...) {
      // Only a kill of the reactor tasklet gets here; the rest is answered, not lost.
      while (fifo) {
        caf::mailbox_element_ptr rest(fifo);
        fifo = next_of(fifo);
        rest->next = nullptr;
        bounce_request(*rest, caf::make_error(caf::sec::request_receiver_down));
      }
      throw;
    }
  }
  if (!terminated_) on_drained();
}

hop hub_actor::make_hop(std::uint64_t instance, std::uint64_t request) const {
  hop h;
  h.actor = serial_;
  h.instance = instance;
  h.request = request;
  h.caf_id = id();
  h.kind = kind_;
  h.name = name_;
  return h;
}

void hub_actor::finish(caf::error reason) {
  if (terminated_) return;
  terminated_ = true;
  close_inbox();
  cleanup(std::move(reason), nullptr);
  unregister_from_system();
  hub_->unregister_actor(*this);
}

void hub_actor::on_destroy() {
  // Reached only if the hub never terminated the actor (it holds a reference until then);
  // behave as CAF does for an actor nobody can reach any more.
  if (!getf(is_cleaned_up_flag)) {
    close_inbox();
    cleanup(caf::make_error(caf::exit_reason::unreachable), nullptr);
    unregister_from_system();
  }
  caf::monitorable_actor::on_destroy();
}

// ---- gateway --------------------------------------------------------------------------------

gateway::gateway(caf::actor_config& cfg, hub_impl& h) : hub_actor(cfg, h, actor_kind::gateway, "") {}

void gateway::on_message(caf::mailbox_element_ptr e) {
  bounce_request(*e, caf::make_error(caf::sec::unexpected_message));
}

void gateway::shutdown(caf::error reason) { finish(std::move(reason)); }

// ---- hub_impl -------------------------------------------------------------------------------

hub_impl::hub_impl(hub& f, caf::actor_system& s, twistlet::reactor& r, hub_options o)
    : facade(f), sys(s), loop(r), opts(std::move(o)), core(caf::make_counted<hub_core>(r, *this)) {
  caf::actor_config cfg;
  gateway_ptr_ = caf::make_actor<gateway, caf::strong_actor_ptr>(sys.next_actor_id(), sys.node(), &sys, cfg, *this);
  gateway_ = &actor_of<gateway>(gateway_ptr_);
  gateway_->register_at_system();
}

hub_impl::~hub_impl() {
  closing = true;
  // Ending actors and failing requests runs user code (unwinding tasklets, waiters woken by
  // the failures), which may spawn actors or send requests: repeat until nothing is left.
  while (live_head_ || !pending_.empty()) {
    // Actors first: their tasklets unwind now and answer what they were handling.
    while (live_head_) {
      caf::strong_actor_ptr keep = live_head_->strong_self();
      hub_actor& a = *live_head_;
      try {
        a.shutdown(caf::make_error(caf::exit_reason::user_shutdown));
      } catch (...) {
        report_unhandled_error(failure::current());
      }
      if (live_head_ == &a) unregister_actor(a);  // it survived its kill: let it go
    }
    std::vector<std::uint64_t> ids;
    ids.reserve(pending_.size());
    for (auto& [id, entry] : pending_) ids.push_back(id);
    for (std::uint64_t id : ids) {
      if (auto p = take(id)) p->reject(failure::make(cancelled_error("the hub of this request was destroyed")));
    }
  }
  for (auto& [key, w] : watches_) w.dest->get()->detach(caf::attachable::token{watch_token, core.get()});
  watches_.clear();
  gateway_->shutdown(caf::make_error(caf::exit_reason::user_shutdown));
  core->close();
  keep_alive_.reset();
}

void hub_impl::register_actor(hub_actor& a) {
  a.reg_ref = a.strong_self();
  a.reg_next = live_head_;
  if (live_head_) live_head_->reg_prev = &a;
  live_head_ = &a;
  ++live_count_;
  update_keep_alive();
}

void hub_impl::unregister_actor(hub_actor& a) noexcept {
  if (!a.reg_ref) return;
  if (a.reg_prev)
    a.reg_prev->reg_next = a.reg_next;
  else
    live_head_ = a.reg_next;
  if (a.reg_next) a.reg_next->reg_prev = a.reg_prev;
  a.reg_prev = a.reg_next = nullptr;
  --live_count_;
  update_keep_alive();
  caf::strong_actor_ptr ref = std::move(a.reg_ref);
}

exec_context* hub_impl::context() noexcept {
  if (contexts_.empty()) return nullptr;
  auto it = contexts_.find(::twistlet::detail::current_tasklet());
  return it == contexts_.end() ? nullptr : it->second;
}

void hub_impl::set_context(const tasklet_impl* t, exec_context* c) { contexts_[t] = c; }

void hub_impl::clear_context(const tasklet_impl* t) noexcept { contexts_.erase(t); }

long hub_impl::waits_in(const chain& c, std::uint64_t serial, std::uint64_t instance) const noexcept {
  for (std::size_t i = 0; i < c.size(); ++i)
    if (c[i].actor == serial && c[i].instance == instance && is_pending(c[i].request)) return static_cast<long>(i);
  return -1;
}

void hub_impl::update_keep_alive() {
  // A live actor can be sent a message from any thread at any time, and a pending request
  // expects its response: either way block_on() in main must wait rather than report a
  // deadlock.
  if (pending_.empty() && live_count_ == 0)
    keep_alive_.reset();
  else if (!keep_alive_)
    keep_alive_.emplace(loop);
}

void hub_impl::watch_dest(const caf::strong_actor_ptr& dest) {
  auto [it, inserted] = watches_.try_emplace(dest.get());
  ++it->second.count;
  if (!inserted) return;
  it->second.dest = dest;
  it->second.generation = ++watch_generation_;
  try {
    dest->get()->attach(caf::attachable_ptr(new watch_attachable(core, dest.get(), it->second.generation)));
  } catch (...) {
    watches_.erase(it);
    throw;
  }
}

void hub_impl::unwatch(const caf::actor_control_block* key) noexcept {
  auto it = watches_.find(key);
  if (it == watches_.end() || --it->second.count > 0) return;
  caf::strong_actor_ptr dest = std::move(it->second.dest);
  watches_.erase(it);
  dest->get()->detach(caf::attachable::token{watch_token, core.get()});
}

void hub_impl::start(std::uint64_t id, const caf::strong_actor_ptr& dest, std::optional<duration> timeout,
                     caf::message msg, std::unique_ptr<pending_base> p) {
  if (!dest) throw std::invalid_argument("twistlet::actor::request: invalid receiver (an empty actor handle)");
  if (closing) {
    p->reject(failure::make(cancelled_error("the hub of this request is being destroyed")));
    return;
  }
  exec_context* ctx = context();
  hub_actor& sender = ctx ? *ctx->self : *gateway_;
  const caf::message_id mid = caf::make_message_id(id);
  caf::mailbox_element_ptr e;
  if (ctx && dest->node() == sys.node()) {
    auto ch = std::make_shared<chain>();
    if (ctx->incoming) {
      const chain& in = *ctx->incoming;
      const std::size_t skip = in.size() >= max_chain ? in.size() - max_chain + 1 : 0;
      ch->reserve(in.size() - skip + 1);
      ch->assign(in.begin() + static_cast<std::ptrdiff_t>(skip), in.end());
    }
    ch->push_back(sender.make_hop(ctx->instance, id));
    e.reset(new chained_element(sender.strong_self(), mid, {}, std::move(msg), std::move(ch)));
  } else {
    e = caf::make_mailbox_element(sender.strong_self(), mid, {}, std::move(msg));
  }
  pending_entry entry;
  entry.p = std::move(p);
  entry.dest = dest.get();
  watch_dest(dest);
  auto [it, inserted] = pending_.emplace(id, std::move(entry));
  (void)inserted;
  update_keep_alive();
  if (timeout) {
    const duration after = *timeout;
    it->second.timer = loop.call_later(std::max(after, duration::zero()), [this, id, after] { expire(id, after); });
  }
  dest->enqueue(std::move(e), nullptr);
}

std::unique_ptr<pending_base> hub_impl::take(std::uint64_t id) noexcept {
  auto it = pending_.find(id);
  if (it == pending_.end()) return nullptr;
  pending_entry entry = std::move(it->second);
  pending_.erase(it);
  if (entry.timer.active()) entry.timer.cancel();
  unwatch(entry.dest);
  update_keep_alive();
  return std::move(entry.p);
}

void hub_impl::cancel(std::uint64_t id) noexcept { take(id); }

void hub_impl::expire(std::uint64_t id, duration after) {
  if (auto p = take(id)) {
    const auto ms = std::chrono::duration_cast<std::chrono::duration<double, std::milli>>(after).count();
    p->reject(failure::make(timeout_error("request timed out after " + std::to_string(ms) + " ms")));
  }
}

void hub_impl::on_response(caf::mailbox_element_ptr e) {
  auto p = take(e->mid.request_id().integer_value());
  if (!p) return;  // timed out, cancelled, or failed by a down notification
  caf::message m = e->move_content_to_message();
  e.reset();
  if (m.match_elements<caf::error>()) {
    caf::error err = m.get_as<caf::error>(0);
    if (err) {
      p->reject(to_failure(err));
      return;
    }
    m = caf::message{};
  }
  p->resolve(m);
}

void hub_impl::on_down(const hub_core::down_note& d) {
  auto it = watches_.find(d.key);
  if (it == watches_.end() || it->second.generation != d.generation) return;
  std::vector<std::uint64_t> ids;
  for (auto& [id, entry] : pending_)
    if (entry.dest == d.key) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  const std::string why = "the receiver of the request terminated before answering (" +
                          (d.reason.category() == caf::atom("exit")
                               ? "exit reason " + caf::to_string(static_cast<caf::exit_reason>(d.reason.code()))
                               : caf::to_string(d.reason)) +
                          ")";
  for (std::uint64_t id : ids)
    if (auto p = take(id)) p->reject(failure::make(receiver_down_error(why, d.reason)));
}

void hub_impl::drain() {
  {
    std::lock_guard lock(core->mutex_);
    core->posted_ = false;
    for (auto& e : core->responses_) responses_.push_back(std::move(e));
    for (auto& d : core->downs_) downs_.push_back(std::move(d));
    for (auto& a : core->ready_) ready_.push_back(std::move(a));
    core->responses_.clear();
    core->downs_.clear();
    core->ready_.clear();
  }
  try {
    // Responses first: they resume tasklets that wait, the latency that matters most.
    while (responses_pos_ < responses_.size()) on_response(std::move(responses_[responses_pos_++]));
    responses_.clear();
    responses_pos_ = 0;
    while (downs_pos_ < downs_.size()) on_down(downs_[downs_pos_++]);
    downs_.clear();
    downs_pos_ = 0;
    while (ready_pos_ < ready_.size()) {
      caf::strong_actor_ptr a = std::move(ready_[ready_pos_++]);
      actor_of<hub_actor>(a).drain();
    }
    ready_.clear();
    ready_pos_ = 0;
  } catch (...) {
    // The reactor tasklet is being killed while a woken tasklet ran: finish the batch later.
    core->request_drain();
    throw;
  }
}

// ---- entry points for the templates ---------------------------------------------------------

hub_impl& current_hub(const char* what) {
  if (hub* h = t_hub) return h->impl();
  throw std::logic_error(std::string("twistlet::actor::") + what +
                         ": this thread has no hub (create a twistlet::actor::hub after the reactor)");
}

std::uint64_t next_request_id(hub_impl& h) noexcept { return h.next_id(); }

void start_request(hub_impl& h, std::uint64_t id, const caf::strong_actor_ptr& dest, std::optional<duration> timeout,
                   caf::message msg, std::unique_ptr<pending_base> p) {
  h.start(id, dest, timeout, std::move(msg), std::move(p));
}

void cancel_request(hub_impl& h, std::uint64_t id) noexcept { h.cancel(id); }

std::optional<duration> default_timeout(const hub_impl& h) noexcept { return h.opts.request_timeout; }

void send_message(const caf::strong_actor_ptr& dest, caf::message msg) {
  if (!dest) return;  // as CAF: a message to an invalid handle goes nowhere
  caf::strong_actor_ptr sender;
  if (hub* h = t_hub)
    if (exec_context* ctx = h->impl().context()) sender = ctx->self->strong_self();
  dest->enqueue(caf::make_mailbox_element(std::move(sender), caf::make_message_id(), {}, std::move(msg)), nullptr);
}

}  // namespace detail

// ---- hub ------------------------------------------------------------------------------------

hub::hub(caf::actor_system& sys, hub_options opts) {
  twistlet::reactor* r = twistlet::reactor::current();
  if (!r) throw std::logic_error("twistlet::actor::hub: this thread has no reactor (create a twistlet::reactor first)");
  if (detail::t_hub) throw std::logic_error("twistlet::actor::hub: this thread already has a hub");
  impl_ = std::make_unique<detail::hub_impl>(*this, sys, *r, std::move(opts));
  detail::t_hub = this;
}

hub::~hub() {
  impl_.reset();
  if (detail::t_hub == this) detail::t_hub = nullptr;
}

caf::actor_system& hub::system() const noexcept { return impl_->sys; }

twistlet::reactor& hub::loop() const noexcept { return impl_->loop; }

std::size_t hub::pending_requests() const noexcept { return impl_->pending_count(); }

std::size_t hub::live_actors() const noexcept { return impl_->live_count(); }

hub* hub::current() noexcept { return detail::t_hub; }

// ---- hub_thread -----------------------------------------------------------------------------

hub_thread::hub_thread(caf::actor_system& sys, hub_options opts, reactor_options ropts) : sys_(sys) {
  std::promise<void> ready;
  std::future<void> started = ready.get_future();
  thread_ = std::thread([this, opts = std::move(opts), ropts, &ready]() mutable {
    std::optional<twistlet::reactor> r;
    std::optional<hub> h;
    try {
      r.emplace(ropts);
      h.emplace(sys_, std::move(opts));
    } catch (...) {
      ready.set_exception(std::current_exception());
      return;
    }
    {
      std::lock_guard lock(mutex_);
      reactor_ = &*r;
      hub_ = &*h;
    }
    ready.set_value();
    for (;;) {
      try {
        r->run();
      } catch (...) {
        // A tasklet's escaping exception ends run(); the hub keeps serving.
        report_unhandled_error(failure::current());
      }
      std::lock_guard lock(mutex_);
      if (stopping_) {
        reactor_ = nullptr;
        break;
      }
    }
    h.reset();
    r.reset();
  });
  try {
    started.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

hub_thread::~hub_thread() { stop(); }

void hub_thread::post_task(twistlet::detail::unique_task task) {
  std::lock_guard lock(mutex_);
  if (!reactor_ || stopping_) return;
  reactor_->post_from_thread(std::move(task));
}

void hub_thread::stop() {
  if (!thread_.joinable()) return;
  if (std::this_thread::get_id() == thread_.get_id())
    throw std::logic_error("twistlet::actor::hub_thread::stop: called from the hub's own thread");
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      stopping_ = true;
      if (reactor_) reactor_->post_from_thread([r = reactor_] { r->stop(); });
    }
  }
  thread_.join();
}

}  // namespace twistlet::actor
