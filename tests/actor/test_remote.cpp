// Remote actors: a second process (this test binary, started with a hidden test's name)
// publishes a service and a tasklet actor on loopback.
#include "actor/actor_test_support.hpp"

#include <caf/send.hpp>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace actor_test;
namespace ta = twistlet::actor;
using twistlet::block_on;

extern char** environ;

namespace {

constexpr const char* peer_test_name = "remote peer process";
constexpr const char* peer_fd_variable = "TWISTLET_ACTOR_PEER_FD";

// The other process, killed and reaped when the handle goes.
struct peer_process {
  pid_t pid = -1;
  std::uint16_t service_port = 0;
  std::uint16_t actor_port = 0;

  peer_process() = default;
  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;
  ~peer_process() { kill(); }

  void kill() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
  }
  // Waits for a clean exit; true if it exited with status 0.
  bool wait_exit() {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
};

std::unique_ptr<peer_process> start_peer() {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  REQUIRE(n > 0);
  exe[n] = '\0';
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  // Everything the child needs is built before fork(): after it, only exec is safe.
  std::string fd_setting = std::string(peer_fd_variable) + "=" + std::to_string(fds[1]);
  std::vector<char*> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, peer_fd_variable, std::strlen(peer_fd_variable)) != 0) env.push_back(*e);
  env.push_back(fd_setting.data());
  env.push_back(nullptr);
  std::string name = peer_test_name;
  std::string quiet = "--out=/dev/null";
  std::vector<char*> argv{exe, name.data(), quiet.data(), nullptr};
  auto peer = std::make_unique<peer_process>();
  peer->pid = ::fork();
  REQUIRE(peer->pid >= 0);
  if (peer->pid == 0) {
    ::close(fds[0]);
    ::execve(exe, argv.data(), env.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string line;
  pollfd p{fds[0], POLLIN, 0};
  char buf[64];
  while (line.find('\n') == std::string::npos) {
    const int ready = ::poll(&p, 1, 30000);
    REQUIRE(ready == 1);
    const ssize_t got = ::read(fds[0], buf, sizeof buf);
    REQUIRE(got > 0);
    line.append(buf, static_cast<std::size_t>(got));
  }
  ::close(fds[0]);
  std::istringstream in(line);
  int service_port = 0;
  int actor_port = 0;
  in >> service_port >> actor_port;
  peer->service_port = static_cast<std::uint16_t>(service_port);
  peer->actor_port = static_cast<std::uint16_t>(actor_port);
  REQUIRE(peer->service_port != 0);
  REQUIRE(peer->actor_port != 0);
  return peer;
}

}  // namespace

// Runs only inside the peer process.
TEST_CASE("remote peer process", "[.remote_peer]") {
  const char* fd_text = std::getenv(peer_fd_variable);
  if (!fd_text) return;
  const int fd = std::atoi(fd_text);
  hub_fixture f(true);
  caf::actor counter = f.hub->spawn(
      [](ta::tasklet_actor& self) {
        int total = 0;
        for (;;) self.receive([&](add_atom, int x) { return total += x; });
      },
      {.name = "counter"});
  caf::actor svc = f.hub->spawn_service(
      {.name = "peer"}, [](add_atom, int a, int b) { return a + b; },
      [](const std::string& s) -> std::string {
        if (s == "fail") throw std::runtime_error("remote boom");
        return s + s;
      },
      [](ping_atom) {
        twistlet::sleep(1h);
        return 0;
      },
      [counter](get_atom) { return counter; },
      [&](stop_atom) { f.loop->stop(); });
  const std::uint16_t service_port = block_on(ta::publish(svc, 0, "127.0.0.1"));
  const std::uint16_t actor_port = block_on(ta::publish(counter, 0, "127.0.0.1"));
  const std::string line = std::to_string(service_port) + " " + std::to_string(actor_port) + "\n";
  REQUIRE(::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
  ::close(fd);
  f.loop->run();  // until a stop request
}

TEST_CASE("remote actors: requests over loopback, and a dead peer fails the pending ones") {
  auto peer = start_peer();
  hub_fixture f(true);
  caf::actor svc = block_on(ta::remote_actor("127.0.0.1", peer->service_port));
  caf::actor counter = block_on(ta::remote_actor("127.0.0.1", peer->actor_port));
  CHECK(block_on(ta::request<int>(svc, 10s, add_atom::value, 1, 2)) == 3);
  CHECK(block_on(ta::request<std::string>(svc, 10s, "ab")) == "abab");
  try {
    block_on(ta::request<std::string>(svc, 10s, "fail"));
    FAIL("expected remote_error");
  } catch (const ta::remote_error& e) {
    CHECK(std::string(e.what()) == "remote boom");
    CHECK(e.type_name == "std::runtime_error");
  }
  CHECK(block_on(ta::request<int>(counter, 10s, add_atom::value, 5)) == 5);
  // The service hands out the tasklet actor too; both handles reach the same actor.
  caf::actor counter2 = block_on(ta::request<caf::actor>(svc, 10s, get_atom::value));
  CHECK(block_on(ta::request<int>(counter2, 10s, add_atom::value, 1)) == 6);
  // Requests with no timeout that only the peer's death can end.
  auto slow = ta::request<int>(svc, ping_atom::value);
  auto unanswered = ta::request<int>(counter, ping_atom::value);  // the counter never takes a ping
  std::vector<twistlet::deferred<int>> concurrent;
  for (int i = 0; i < 20; ++i) concurrent.push_back(ta::request<int>(svc, 10s, add_atom::value, i, i));
  auto sums = block_on(twistlet::gather_results(concurrent));
  for (int i = 0; i < 20; ++i) CHECK(sums[static_cast<std::size_t>(i)] == 2 * i);
  CHECK(f.hub->pending_requests() == 2);
  peer->kill();
  CHECK_THROWS_AS(block_on(slow), ta::receiver_down_error);
  CHECK_THROWS_AS(block_on(unanswered), ta::receiver_down_error);
  CHECK(f.hub->pending_requests() == 0);
  CHECK_THROWS_AS(block_on(ta::request<int>(svc, 10s, add_atom::value, 1, 2)), ta::receiver_down_error);
}

TEST_CASE("remote_actor to a port where nothing is published fails with actor_error") {
  hub_fixture f(true);
  // A port of this process that is bound but does not speak CAF's protocol would hang the
  // handshake; a free port refuses at once. Bind one, note it, close it.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(s >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(s);
  CHECK_THROWS_AS(block_on(ta::remote_actor("127.0.0.1", ntohs(addr.sin_port))), ta::actor_error);
}

TEST_CASE("remote actors: a peer asked to stop exits cleanly") {
  auto peer = start_peer();
  {
    hub_fixture f(true);
    caf::actor svc = block_on(ta::remote_actor("127.0.0.1", peer->service_port));
    CHECK(block_on(ta::request<int>(svc, 10s, add_atom::value, 20, 22)) == 42);
    ta::send(svc, stop_atom::value);
  }
  CHECK(peer->wait_exit());
}

TEST_CASE("publish and remote_actor without a middleman fail") {
  hub_fixture f;
  caf::actor calc = f.sys().spawn<calculator>();
  CHECK_THROWS_AS(block_on(ta::publish(calc, 0)), std::logic_error);
  CHECK_THROWS_AS(block_on(ta::remote_actor("127.0.0.1", 1)), std::logic_error);
  caf::anon_send_exit(calc, caf::exit_reason::kill);
}
