// A service composed of actors on three hubs (one per thread): accounts are tasklet actors on
// one hub thread, the bank service and its audit log on another, the fee schedule a plain
// CAF actor; main drives it from its own hub with block_on(request(...)).
#include "bank.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include <cstdio>

namespace ta = twistlet::actor;

int main() {
  caf::actor_system_config cfg;
  ta::configure(cfg);
  caf::actor_system sys{cfg};
  auto say = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
  {
    ta::hub_thread accounts_hub(sys);
    ta::hub_thread bank_hub(sys);
    std::map<std::string, caf::actor> accounts = accounts_hub.call([](ta::hub& h) {
      std::map<std::string, caf::actor> m;
      for (auto [name, opening] : {std::pair{"alice", 100}, {"bob", 50}, {"carol", 0}, {"dave", 10}})
        m[name] = h.spawn(bank::account(opening), {.name = name});
      return m;
    }).get();
    say("hub thread 1: accounts alice 100, bob 50, carol 0, dave 10 (tasklet actors)");
    caf::actor fees = sys.spawn(bank::fee_schedule, 1);
    caf::actor bank = bank_hub.call([&](ta::hub& h) {
      caf::actor audit = h.spawn(bank::audit_log, {.name = "audit"});
      return bank::open_bank(h, accounts, fees, audit, [] {});
    }).get();
    say("hub thread 2: the bank service and its audit log; the fee schedule is a plain CAF actor");

    twistlet::reactor loop;
    ta::hub main_hub(sys);
    bank::run_demo(bank, say);

    // An account that closes: requests to it fail at once, with their own exception type.
    caf::anon_send_exit(accounts["carol"], caf::exit_reason::user_shutdown);
    try {
      twistlet::block_on(ta::request<int>(accounts["carol"], bank::balance_atom::value));
      say("carol answered after closing?");
    } catch (const ta::receiver_down_error& e) {
      say(std::string("carol closed; asking her account: ") + e.what());
    }
    caf::anon_send_exit(fees, caf::exit_reason::user_shutdown);
  }
  say("done");
  return 0;
}
