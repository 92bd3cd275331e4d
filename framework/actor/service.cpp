// Services: a CAF actor that handles each request in a tasklet of its own.
#include <caf/sec.hpp>

#include "actor/actor_impl.hpp"

namespace twistlet::actor::detail {

namespace {

// The function of a handler tasklet. If the tasklet is killed before it starts, the
// destructor still answers the request and frees the handler's slot.
struct handler_job {
  caf::strong_actor_ptr svc;
  caf::mailbox_element_ptr elem;
  std::size_t index;
  std::uint64_t instance;
  bool started = false;

  handler_job(caf::strong_actor_ptr s, caf::mailbox_element_ptr e, std::size_t i, std::uint64_t n)
      : svc(std::move(s)), elem(std::move(e)), index(i), instance(n) {}
  handler_job(handler_job&&) noexcept = default;
  handler_job& operator=(handler_job&&) = delete;
  ~handler_job() {
    if (!svc || started) return;
    if (elem) bounce_request(*elem, caf::make_error(caf::sec::request_receiver_down));
    actor_of<service_impl>(svc).handler_done(instance);
  }
  void operator()() {
    started = true;
    actor_of<service_impl>(svc).run_handler(elem, index, instance);
  }
};

bool is_exit_msg(const caf::mailbox_element& e) noexcept {
  const caf::type_erased_tuple& c = e.content();
  return c.size() == 1 && c.match_element<caf::exit_msg>(0);
}

bool is_down_msg(const caf::mailbox_element& e) noexcept {
  const caf::type_erased_tuple& c = e.content();
  return c.size() == 1 && c.match_element<caf::down_msg>(0);
}

}  // namespace

service_impl::service_impl(caf::actor_config& cfg, hub_impl& h, service_options opts, std::unique_ptr<handler_set> hs)
    : hub_actor(cfg, h, actor_kind::service, opts.name), opts_(std::move(opts)), handlers_(std::move(hs)) {}

bool service_impl::closes_cycle(const caf::mailbox_element& e) const {
  if (!e.mid.is_request() || running_.empty()) return false;
  chain_ptr ch = chain_of(e);
  if (!ch) return false;
  for (const auto& [instance, t] : running_)
    if (hub_->waits_in(*ch, serial(), instance) < 0) return false;
  return true;
}

void service_impl::on_message(caf::mailbox_element_ptr e) {
  if (is_exit_msg(*e)) {
    caf::error reason = e->content().get_as<caf::exit_msg>(0).reason;
    if (reason) shutdown(std::move(reason));
    return;
  }
  if (is_down_msg(*e)) return;
  const std::size_t i = handlers_->match(e->content());
  if (i == handler_set::npos) {
    bounce_request(*e, caf::make_error(caf::sec::unexpected_message));
    return;
  }
  if (opts_.max_concurrency != 0 && running_.size() >= opts_.max_concurrency) {
    if (closes_cycle(*e)) {
      chain_ptr ch = chain_of(*e);
      std::size_t from = ch->size();
      for (const auto& [instance, t] : running_)
        from = std::min(from, static_cast<std::size_t>(hub_->waits_in(*ch, serial(), instance)));
      std::string text = "request cycle: ";
      for (std::size_t k = from; k < ch->size(); ++k) text += describe_hop((*ch)[k]) + " -> ";
      text += "service";
      if (!label().empty()) text += " '" + label() + "'";
      text += " (actor " + std::to_string(id()) + "): every handler the service may run at once (" +
              std::to_string(opts_.max_concurrency) + ") waits for an answer in this chain, so none is left to take it";
      bounce_request(*e, make_error(error_code::request_cycle, std::move(text)));
      return;
    }
    queued_.emplace_back(std::move(e), i);
    return;
  }
  start(std::move(e), i, true);
}

void service_impl::start(caf::mailbox_element_ptr e, std::size_t index, bool now) {
  const std::uint64_t instance = ++next_instance_;
  twistlet::tasklet t(handler_job(strong_self(), std::move(e), index, instance),
                      tasklet_options{.name = opts_.name, .stack_size = opts_.stack_size});
  running_.emplace(instance, t);
  // From the drain (the reactor tasklet) the handler starts at once, as a woken block_on()
  // waiter would; from a finishing handler it waits its turn.
  if (now)
    t.run();
  else
    t.insert();
}

namespace {

// What a handler's tasklet is doing, for debug listings: the request it serves and whose. Two
// ids and a pointer; the text is made only when a listing asks.
struct serving_note : ::twistlet::detail::wait_note {
  const service_impl* service = nullptr;
  caf::actor_id from = 0;
  std::uint64_t instance = 0;
};

std::string format_serving(const ::twistlet::detail::wait_note& n) {
  const auto& s = static_cast<const serving_note&>(n);
  std::string text = "serving a request";
  if (s.from) text += " of actor " + std::to_string(s.from);
  text += " in service";
  if (!s.service->label().empty()) text += " '" + s.service->label() + "'";
  return text + " (actor " + std::to_string(s.service->id()) + ", handler " + std::to_string(s.instance) + ")";
}

}  // namespace

void service_impl::run_handler(caf::mailbox_element_ptr& e, std::size_t index, std::uint64_t instance) {
  serving_note note;
  note.format = format_serving;
  note.service = this;
  note.from = e->sender ? e->sender->id() : 0;
  note.instance = instance;
  ::twistlet::detail::wait_note_scope noted(note);
  exec_context ctx;
  ctx.self = this;
  ctx.instance = instance;
  ctx.incoming = chain_of(*e);
  const tasklet_impl* me = ::twistlet::detail::current_tasklet();
  hub_->set_context(me, &ctx);
  struct done_guard {
    service_impl& s;
    const tasklet_impl* me;
    std::uint64_t instance;
    ~done_guard() {
      s.hub_->clear_context(me);
      s.handler_done(instance);
    }
  } guard{*this, me, instance};
  reply_target t;
  t.source = e->sender;
  t.mid = e->mid;
  t.stages = std::move(e->stages);
  try {
    caf::message reply = handlers_->invoke(index, *e);
    e.reset();
    if (t.open()) deliver(strong_self(), t, std::move(reply));
  } catch (const tasklet_exit&) {
    if (t.open()) deliver(strong_self(), t, caf::make_message(caf::make_error(caf::sec::request_receiver_down)));
    throw;
  } catch (...) {
    failure f = failure::current();
    if (t.open())
      deliver(strong_self(), t, caf::make_message(to_error(f)));
    else
      report_unhandled_error(f);
  }
}

void service_impl::handler_done(std::uint64_t instance) noexcept {
  running_.erase(instance);
  if (terminated() || stopping_) {
    if (running_.empty()) handlers_.reset();
    return;
  }
  while (!queued_.empty() && (opts_.max_concurrency == 0 || running_.size() < opts_.max_concurrency)) {
    auto [e, i] = std::move(queued_.front());
    queued_.pop_front();
    try {
      start(std::move(e), i, false);
    } catch (...) {
      report_unhandled_error(failure::current());
    }
  }
}

void service_impl::shutdown(caf::error reason) {
  if (terminated() || stopping_) return;
  stopping_ = true;
  close_inbox();
  while (!queued_.empty()) {
    caf::mailbox_element_ptr e = std::move(queued_.front().first);
    queued_.pop_front();
    bounce_request(*e, caf::make_error(caf::sec::request_receiver_down));
  }
  std::vector<twistlet::tasklet> handlers;
  handlers.reserve(running_.size());
  for (auto& [instance, t] : running_) handlers.push_back(t);
  for (auto& t : handlers)
    if (t.alive()) t.kill();
  finish(std::move(reason));
  if (running_.empty()) handlers_.reset();
}

caf::strong_actor_ptr spawn_service(hub_impl& h, service_options opts, std::unique_ptr<handler_set> handlers) {
  if (hub::current() != &h.facade)
    throw std::logic_error("twistlet::actor::hub::spawn_service: called from another thread than the hub's");
  return make_hub_actor<service_impl>(h, std::move(opts), std::move(handlers));
}

}  // namespace twistlet::actor::detail
