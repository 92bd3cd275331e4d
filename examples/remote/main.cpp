// The bank of examples/actors across two processes.
//
//   remote                       starts `remote --server --port 0` as a second process, then
//                                acts as the client; exits 0 when both are done
//   remote --server [--port N]   publishes the bank on 127.0.0.1:N (0: any free port), prints
//                                the port and serves until a client sends it a stop request
//   remote --client --port N     runs the demo against a server that is already running
#include "../actors/bank.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/send.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace ta = twistlet::actor;

namespace {

void say(const char* who, const std::string& line) {
  std::printf("[%s] %s\n", who, line.c_str());
  std::fflush(stdout);
}

int serve(std::uint16_t port, int ready_fd) {
  caf::actor_system_config cfg;
  ta::configure(cfg);
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  std::promise<void> stop;
  {
    ta::hub_thread accounts_hub(sys);
    ta::hub_thread bank_hub(sys);
    auto accounts = accounts_hub.call([](ta::hub& h) {
      std::map<std::string, caf::actor> m;
      for (auto [name, opening] : {std::pair{"alice", 100}, {"bob", 50}, {"carol", 0}, {"dave", 10}})
        m[name] = h.spawn(bank::account(opening), {.name = name});
      return m;
    }).get();
    caf::actor fees = sys.spawn(bank::fee_schedule, 1);
    // The bank is published from its own hub: publish() blocks only the tasklet that waits.
    port = bank_hub.call([&](ta::hub& h) {
      caf::actor audit = h.spawn(bank::audit_log, {.name = "audit"});
      caf::actor bank = bank::open_bank(h, accounts, fees, audit, [&stop] { stop.set_value(); });
      return twistlet::block_on(ta::publish(bank, port, "127.0.0.1"));
    }).get();
    say("server", "bank listening on 127.0.0.1:" + std::to_string(port));
    if (ready_fd >= 0) {
      const std::string line = std::to_string(port) + "\n";
      if (::write(ready_fd, line.data(), line.size()) < 0) return 1;
      ::close(ready_fd);
    }
    stop.get_future().wait();
    say("server", "stop requested");
    caf::anon_send_exit(fees, caf::exit_reason::user_shutdown);
  }
  return 0;
}

int client(std::uint16_t port) {
  caf::actor_system_config cfg;
  ta::configure(cfg);
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  twistlet::reactor loop;
  ta::hub hub(sys);
  caf::actor bank = twistlet::block_on(ta::remote_actor("127.0.0.1", port));
  say("client", "connected to the bank at 127.0.0.1:" + std::to_string(port));
  bank::run_demo(bank, [](const std::string& line) { say("client", line); });
  // Ask the server to stop, and see it go: the connection closes, the bank's proxy goes down.
  twistlet::deferred<caf::error> gone;
  hub.spawn([&](ta::tasklet_actor& self) {
    self.monitor(bank);
    self.receive([&](const caf::down_msg& m) { gone.callback(m.reason); });
  });
  ta::send(bank, bank::stop_atom::value);
  const caf::error reason = twistlet::block_on(gone);
  say("client", "the server went away (" + caf::to_string(static_cast<caf::exit_reason>(reason.code())) + ")");
  return 0;
}

// Starts this program again as the server and returns its pid; `port` receives the port.
pid_t start_server(std::uint16_t& port) {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return -1;
  exe[n] = '\0';
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  std::string fd_text = std::to_string(fds[1]);
  char server_flag[] = "--server";
  char port_flag[] = "--port";
  char any_port[] = "0";
  char ready_flag[] = "--ready-fd";
  char* argv[] = {exe, server_flag, port_flag, any_port, ready_flag, fd_text.data(), nullptr};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    ::execv(exe, argv);
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string line;
  char buf[32];
  for (ssize_t got; line.find('\n') == std::string::npos && (got = ::read(fds[0], buf, sizeof buf)) > 0;)
    line.append(buf, static_cast<std::size_t>(got));
  ::close(fds[0]);
  port = static_cast<std::uint16_t>(std::atoi(line.c_str()));
  return pid;
}

}  // namespace

int main(int argc, char** argv) {
  bool server = false;
  bool client_only = false;
  int port = 0;
  int ready_fd = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--server") {
      server = true;
    } else if (arg == "--client") {
      client_only = true;
    } else if (arg == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (arg == "--ready-fd" && i + 1 < argc) {
      ready_fd = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--server [--port N] | --client --port N]\n", argv[0]);
      return 2;
    }
  }
  if (server) return serve(static_cast<std::uint16_t>(port), ready_fd);
  if (client_only) return client(static_cast<std::uint16_t>(port));

  std::uint16_t server_port = 0;
  const pid_t pid = start_server(server_port);
  if (pid < 0 || server_port == 0) {
    std::fprintf(stderr, "could not start the server process\n");
    if (pid > 0) ::kill(pid, SIGKILL);
    return 1;
  }
  int rc = 1;
  try {
    rc = client(server_port);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "client failed: %s\n", e.what());
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const bool server_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  say("client", server_ok ? "the server process exited with status 0" : "the server process failed");
  return rc == 0 && server_ok ? 0 : 1;
}
