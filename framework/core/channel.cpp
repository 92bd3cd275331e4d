#include <twistlet/channel.hpp>

#include <cstdio>

#include "core/scheduler.hpp"

namespace twistlet::detail {

channel_state::channel_state() noexcept : owner_(owner_token()) {}

channel_state::channel_state(std::string name) noexcept : owner_(owner_token()), name_(std::move(name)) {}

// Waiters hold a reference while queued, so the last handle cannot go while anyone waits.
channel_state::~channel_state() = default;

void channel_state::hand_over(tasklet_impl* partner, int dir) {
  scheduler& s = *partner->sched;
  if (preference_ == -dir)
    s.wake_now(partner);
  else
    s.wake_later(partner);
}

void channel_state::wait(int dir, channel_waiter& self) {
  if (closing_)
    throw channel_closed_error(dir > 0 ? "channel::send: the channel is closing and no receiver waits"
                                       : "channel::receive: the channel is closing and no sender waits");
  scheduler& s = scheduler::get();
  s.ensure_can_block(this);
  self.who = s.current();
  self.prev = tail_;
  self.next = nullptr;
  if (tail_)
    tail_->next = &self;
  else
    head_ = &self;
  tail_ = &self;
  balance_ += dir;
  // The waiter entry doubles as the wait slot, so abandon() finds it from the tasklet.
  s.park_current(*this, &self);
}

void channel_state::abandon(tasklet_impl* t) noexcept {
  auto* w = static_cast<channel_waiter*>(wait_slot(t));
  if (w->prev)
    w->prev->next = w->next;
  else
    head_ = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    tail_ = w->prev;
  w->next = w->prev = nullptr;
  balance_ += balance_ > 0 ? -1 : 1;
}

std::string channel_state::describe() const {
  // A named channel is known by its name; the address only tells unnamed ones apart.
  char buf[96];
  std::snprintf(buf, sizeof buf, "(balance %d%s)", balance_, closing_ ? ", closing" : "");
  std::string s = "channel ";
  if (name_.empty()) {
    char addr[32];
    std::snprintf(addr, sizeof addr, "%p ", static_cast<const void*>(this));
    s += addr;
  } else {
    s += '\'';
    s += name_;
    s += "' ";
  }
  return s += buf;
}

std::string channel_state::describe_waiter(const tasklet_impl*) const {
  // Every waiter of a channel waits in the same direction, which the balance's sign tells.
  return (balance_ > 0 ? "send on " : "receive on ") + describe();
}

std::string channel_state::deadlock_message(const tasklet_impl* t) const {
  std::string who = t->main ? "the main tasklet" : "tasklet " + std::to_string(t->id);
  return "deadlock: " + who + (balance_ > 0 ? " is sending without a receiver available" : " is receiving without a sender available") +
         " on " + describe();
}

}  // namespace twistlet::detail
