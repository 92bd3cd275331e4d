// The peer of every "hop" benchmark: one handler that posts itself to a plain Asio io_context,
// once per iteration. Shared by bench_bridge and bench_reactor so that both compare against
// the same code.
#pragma once

#include <benchmark/benchmark.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>

namespace twistlet_bench {

/// Posts itself again while the benchmark keeps running.
struct post_hop {
  asio::io_context* io;
  benchmark::State* state;
  asio::steady_timer* pending = nullptr;  // cancelled at the end, so that run() returns
  void operator()() const {
    if (state->KeepRunning())
      asio::post(*io, *this);
    else if (pending)
      pending->cancel();
  }
};

/// A hop on an io_context with nothing else in it: Asio runs handlers back to back.
inline void asio_post_hop(benchmark::State& state) {
  asio::io_context io(1);
  asio::post(io, post_hop{&io, &state});
  io.run();
}

/// An io_context with a live I/O object runs Asio's epoll reactor as a task between handlers:
/// one epoll_wait per hop. The reactor's io_context is of this kind (its wake-up timer, and
/// the program's sockets).
inline void asio_post_hop_with_io_object(benchmark::State& state) {
  asio::io_context io(1);
  asio::steady_timer timer(io, std::chrono::hours(1));
  timer.async_wait([](const asio::error_code&) {});
  asio::post(io, post_hop{&io, &state, &timer});
  io.run();
}

}  // namespace twistlet_bench
