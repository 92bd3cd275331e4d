#include <twistlet/channel.hpp>

#include <cstdio>

#include "core/scheduler.hpp"

namespace twistlet::detail {

channel_state::channel_state() noexcept : owner_(owner_token()) {}

// Waiters hold a reference while queued, so the last handle cannot go while anyone waits.
channel_state::~channel_state() = default;

tasklet_impl* channel_state::pop_head(int dir) noexcept {
  tasklet_impl* t = head_;
  head_ = t->wait_next;
  if (head_)
    head_->wait_prev = nullptr;
  else
    tail_ = nullptr;
  t->wait_next = t->wait_prev = nullptr;
  balance_ += dir;
  return t;
}

void channel_state::hand_over(tasklet_impl* partner, int dir) {
  scheduler& s = *partner->sched;
  if (preference_ == -dir)
    s.wake_now(partner);
  else
    s.wake_later(partner);
}

void channel_state::wait(int dir, void* slot) {
  if (closing_)
    throw channel_closed_error(dir > 0 ? "channel::send: the channel is closing and no receiver waits"
                                       : "channel::receive: the channel is closing and no sender waits");
  scheduler& s = scheduler::get();
  s.ensure_can_block();
  tasklet_impl* self = s.current();
  self->wait_prev = tail_;
  self->wait_next = nullptr;
  if (tail_)
    tail_->wait_next = self;
  else
    head_ = self;
  tail_ = self;
  balance_ += dir;
  s.block_current(*this, slot);
}

void channel_state::abandon(tasklet_impl* t) noexcept {
  if (t->wait_prev)
    t->wait_prev->wait_next = t->wait_next;
  else
    head_ = t->wait_next;
  if (t->wait_next)
    t->wait_next->wait_prev = t->wait_prev;
  else
    tail_ = t->wait_prev;
  t->wait_next = t->wait_prev = nullptr;
  balance_ += balance_ > 0 ? -1 : 1;
}

std::string channel_state::describe() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "channel %p (balance %d%s)", static_cast<const void*>(this), balance_,
                closing_ ? ", closing" : "");
  return buf;
}

std::string channel_state::deadlock_message(const tasklet_impl* t) const {
  std::string who = t->main ? "the main tasklet" : "tasklet " + std::to_string(t->id);
  return "deadlock: " + who + (balance_ > 0 ? " is sending without a receiver available" : " is receiving without a sender available") +
         " on " + describe();
}

}  // namespace twistlet::detail
