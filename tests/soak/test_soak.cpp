// Soak and fault tests (CTest label "soak"): long runs that must leave memory flat, and peers
// that misbehave. Their size comes from the environment, so the ordinary suite runs them
// briefly and scripts/ci_soak.sh runs them in full under AddressSanitizer (where LeakSanitizer
// also checks that nothing leaks):
//   TWISTLET_SOAK_TASKLETS  tasklets spawned and finished (default 400,000; the soak: 10,000,000)
//   TWISTLET_SOAK_SECONDS   how long the connection churn runs (default 5; the soak: 60)
// Memory is bounded by resident set size from /proc/self/statm, sampled after warm-up: a
// resource bound, not a timing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include <twistlet/bridge.hpp>
#include <twistlet/channel.hpp>
#include <twistlet/net.hpp>
#include <twistlet/reactor.hpp>
#include <twistlet/tasklet.hpp>

#include "net/net_test_support.hpp"

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer keeps freed memory in a quarantine (256 MiB by default) before reusing it,
// so resident memory climbs until the quarantine is full whatever the program does. A small
// one fills during the warm-up, after which the RSS bound measures the program again. (An
// ASAN_OPTIONS setting in the environment still wins.)
extern "C" __attribute__((used, visibility("default"))) const char* __asan_default_options() {
  return "quarantine_size_mb=16";
}
#endif

using namespace twistlet;
using namespace net_test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t MiB = 1024 * 1024;

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  const long n = std::strtol(v, nullptr, 10);
  return n > 0 ? n : fallback;
}

std::size_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0;
  std::size_t resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// Resident memory after warm-up: the first sample is the baseline, growth is the most any
// later sample exceeds it by.
struct rss_watch {
  std::size_t baseline = 0;
  std::size_t peak = 0;
  void sample() {
    const std::size_t now = rss_bytes();
    if (baseline == 0) baseline = now;
    peak = std::max(peak, now);
  }
  std::size_t growth() const { return peak > baseline ? peak - baseline : 0; }
};

// Protocol objects alive, to see that every connection's protocol is released.
std::atomic<int> g_live_protocols{0};

struct line_echo : net::line_receiver {
  line_echo() : line_receiver(1000) { ++g_live_protocols; }
  ~line_echo() override { --g_live_protocols; }
  line_echo(const line_echo&) = delete;
  line_echo& operator=(const line_echo&) = delete;
  void line_received(std::string_view line) override { send_line(line); }
};

}  // namespace

TEST_CASE("millions of tasklets spawned and finished in waves keep memory flat", "[soak]") {
  const long total = env_long("TWISTLET_SOAK_TASKLETS", 400'000);
  constexpr long wave = 10'000;  // tasklets alive at once
  constexpr long warmup_waves = 20;
  const long waves = std::max(total / wave, warmup_waves * 2);
  long finished = 0;
  long received = 0;
  rss_watch rss;
  for (long w = 0; w < waves; ++w) {
    // Half send, half receive on the wave's channel, so every tasklet blocks once and is
    // woken by a partner; the odd ones also yield.
    channel<long> ch;
    for (long i = 0; i < wave / 2; ++i) {
      tasklet::spawn([&, i] {
        if (i % 2) schedule();
        ch.send(i);
        ++finished;
      });
      tasklet::spawn([&] {
        received += ch.receive() >= 0 ? 1 : 0;
        ++finished;
      });
    }
    run();
    if (w >= warmup_waves) rss.sample();
  }
  INFO("waves " << waves << ", RSS after warm-up " << rss.baseline / MiB << " MiB, growth " << rss.growth() / 1024
                << " KiB");
  CHECK(finished == waves * wave);
  CHECK(received == waves * wave / 2);
  CHECK(getruncount() == 1);
  CHECK(rss.growth() < 4 * MiB);
}

TEST_CASE("1,000 connections open, echo and drop for a while with no growth", "[soak][net]") {
  const auto run_for = std::chrono::seconds(env_long("TWISTLET_SOAK_SECONDS", 5));
  constexpr int connections = 1000;
  if (ensure_open_files(2 * connections + 100) < 2 * connections + 100) {
    WARN("not enough file descriptors for 1,000 connections; skipped");
    return;
  }
  error_capture errors;
  long rounds = 0;
  long wrong_echoes = 0;
  long failures = 0;
  std::string first_failure;
  rss_watch rss;
  run_reactor([&](reactor& r) {
    net::listen_options opts;
    opts.backlog = 2 * connections;
    net::listener l = net::listen_tcp(r, loopback(0), net::make_factory<line_echo>(), opts);
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + run_for;
    const auto warm = start + std::max<std::chrono::steady_clock::duration>(run_for / 5, 1s);
    int running = connections;
    for (int i = 0; i < connections; ++i) {
      tasklet::spawn([&, i, port = l.port()] {
        for (long k = 0; std::chrono::steady_clock::now() < deadline; ++k) {
          try {
            net::stream c = net::connect(r, loopback(port));
            const std::string msg = "client " + std::to_string(i) + " round " + std::to_string(k);
            c.write(msg + "\n");
            if (c.read_line() != msg) ++wrong_echoes;
            ++rounds;
            // Three ways to drop: an orderly close (half-close, wait for the server's end),
            // an abrupt close, and a reset (SO_LINGER 0).
            switch (k % 3) {
              case 0: {
                c.shutdown_write();
                char b[16];
                try {
                  for (;;) c.read_some(asio::buffer(b));
                } catch (const net::end_of_stream&) {
                }
                break;
              }
              case 1:
                break;
              case 2:
                c.socket().set_option(asio::socket_base::linger(true, 0));
                break;
            }
            c.close();
          } catch (const std::exception& e) {
            if (failures++ == 0) first_failure = e.what();
          }
        }
        --running;
      });
    }
    // The sampler: resident memory while the churn runs, from the end of the warm-up.
    while (running > 0) {
      sleep(100ms);
      if (std::chrono::steady_clock::now() >= warm && running == connections) rss.sample();
    }
    for (int i = 0; i < 10000 && l.connection_count() > 0; ++i) sleep(1ms);
    CHECK(l.connection_count() == 0);
  });
  INFO("rounds " << rounds << ", RSS after warm-up " << rss.baseline / MiB << " MiB, growth " << rss.growth() / 1024
                 << " KiB; first failure: " << first_failure);
  CHECK(failures == 0);
  CHECK(wrong_echoes == 0);
  CHECK(rounds >= connections);
  CHECK(g_live_protocols.load() == 0);
  CHECK(errors.failures.empty());
  CHECK(rss.growth() < 16 * MiB);
}

namespace {

// The server side of the fault test: what each connection went through.
struct fault_log {
  int made = 0;
  int lost = 0;
  int resets = 0;
  int ends = 0;
  int exceeded = 0;
  std::size_t max_pending = 0;
};

struct watched_echo : net::line_receiver {
  explicit watched_echo(std::shared_ptr<fault_log> log) : line_receiver(1000), log_(std::move(log)) {
    ++g_live_protocols;
  }
  ~watched_echo() override { --g_live_protocols; }
  watched_echo(const watched_echo&) = delete;
  watched_echo& operator=(const watched_echo&) = delete;
  void connection_made() override { ++log_->made; }
  void line_received(std::string_view line) override {
    send_line(line);
    log_->max_pending = std::max(log_->max_pending, transport().pending_bytes());
  }
  void line_length_exceeded(std::string_view partial) override {
    ++log_->exceeded;
    line_receiver::line_length_exceeded(partial);
  }
  void connection_lost(const failure& reason) override {
    ++log_->lost;
    if (reason.check<net::connection_reset>()) ++log_->resets;
    if (reason.check<net::end_of_stream>()) ++log_->ends;
  }

 private:
  std::shared_ptr<fault_log> log_;
};

// Bytes of every value but the line terminators, so a garbage line comes back as it went.
std::string garbage(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    seed = seed * 1103515245u + 12345u;
    char c = static_cast<char>(seed >> 16);
    if (c == '\n' || c == '\r') c = '\0';
    s[i] = c;
  }
  return s;
}

}  // namespace

TEST_CASE("peers that reset, stall or send garbage to a line_receiver leave the server serving",
          "[soak][net][fault]") {
  constexpr int resetters = 100;
  constexpr int stallers = 2;
  constexpr int garbage_peers = 50;
  constexpr int long_liners = 20;
  constexpr int healthy = 50;
  constexpr int total = resetters + stallers + garbage_peers + long_liners + healthy;
  // More than the kernel buffers on both sides of a loopback connection hold (several MiB
  // each with autotuning), so the rest has to wait in the server's transport.
  constexpr std::size_t stall_bytes = 32 * MiB;
  if (ensure_open_files(2 * total + 100) < 2 * total + 100) {
    WARN("not enough file descriptors; skipped");
    return;
  }
  auto log = std::make_shared<fault_log>();
  error_capture errors;
  int healthy_ok = 0;
  int garbage_ok = 0;
  int long_lines_dropped = 0;
  run_reactor([&](reactor& r) {
    net::listen_options opts;
    opts.backlog = 2 * total;
    net::listener l = net::listen_tcp(r, loopback(0), net::make_factory<watched_echo>(log), opts);
    const auto port = l.port();
    std::vector<deferred<void>> peers;

    // Stallers send a lot and never read: the server's echoes back up in its transport.
    std::vector<net::stream> stalled;
    for (int i = 0; i < stallers; ++i) {
      // (No small SO_RCVBUF here: on loopback a receive buffer smaller than one segment makes
      // Linux drop the segments that carry the peer's acknowledgements, and both ends stall.)
      net::stream c = net::connect(r, loopback(port));
      stalled.push_back(c);
      peers.push_back(deferred_tasklet([c, i]() mutable {
        const std::string line = std::string(999, static_cast<char>('a' + i)) + "\n";
        for (std::size_t sent = 0; sent < stall_bytes; sent += line.size()) c.write(line);
      })());
    }
    // Resetters drop mid-line with a reset.
    for (int i = 0; i < resetters; ++i)
      peers.push_back(deferred_tasklet([&r, port, i] {
        net::stream c = net::connect(r, loopback(port));
        c.write("a line that never ends " + std::to_string(i));
        c.socket().set_option(asio::socket_base::linger(true, 0));
        c.close();
      })());
    // Garbage: arbitrary bytes in lines, which come back as they went.
    for (int i = 0; i < garbage_peers; ++i)
      peers.push_back(deferred_tasklet([&, i] {
        net::stream c = net::connect(r, loopback(port));
        for (int k = 0; k < 5; ++k) {
          const std::string g = garbage(1 + static_cast<std::size_t>((i * 37 + k * 101) % 900), unsigned(i * 10 + k));
          c.write(g + "\r\n");
          if (c.read_line(2000) != g) return;
        }
        ++garbage_ok;
      })());
    // Lines over the server's limit: the server drops the connection.
    for (int i = 0; i < long_liners; ++i)
      peers.push_back(deferred_tasklet([&, i] {
        net::stream c = net::connect(r, loopback(port));
        try {
          c.write(garbage(5000 + static_cast<std::size_t>(i), unsigned(i)));
          char b[64];
          for (;;) c.read_some(asio::buffer(b));
        } catch (const net::end_of_stream&) {
          ++long_lines_dropped;
        } catch (const net::connection_reset&) {
          ++long_lines_dropped;
        }
      })());
    // Healthy clients, served meanwhile.
    for (int i = 0; i < healthy; ++i)
      peers.push_back(deferred_tasklet([&, i] {
        net::stream c = net::connect(r, loopback(port));
        for (int k = 0; k < 20; ++k) {
          const std::string msg = "healthy " + std::to_string(i) + " " + std::to_string(k);
          c.write(msg + "\n");
          if (c.read_line() != msg) return;
        }
        c.close();
        ++healthy_ok;
      })());

    block_on(gather_results(std::move(peers)));
    // The stallers have sent everything and read nothing; now they go away too.
    for (auto& c : stalled) c.close();
    stalled.clear();
    for (int i = 0; i < 10000 && l.connection_count() > 0; ++i) sleep(1ms);
    CHECK(l.connection_count() == 0);
  });
  INFO("made " << log->made << ", lost " << log->lost << ", resets " << log->resets << ", ends " << log->ends << ", max pending "
               << log->max_pending);
  CHECK(healthy_ok == healthy);
  CHECK(garbage_ok == garbage_peers);
  CHECK(long_lines_dropped == long_liners);
  CHECK(log->exceeded == long_liners);
  // A peer that resets before the server accepts it never reaches a protocol (accept() drops
  // it); every other connection is made once and lost once, for its own reason.
  const int accepted_resetters = log->made - (total - resetters);
  CHECK(accepted_resetters >= 0);
  CHECK(log->lost == log->made);
  CHECK(log->ends == healthy + garbage_peers);
  CHECK(log->resets == stallers + accepted_resetters);
  // The stallers' echoes did back up in the server instead of blocking it.
  CHECK(log->max_pending > stall_bytes / 4);
  CHECK(g_live_protocols.load() == 0);
  CHECK(errors.failures.empty());
}
