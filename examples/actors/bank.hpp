// A small bank made of actors, shared by the `actors` and `remote` examples.
//
//   - each account is a tasklet actor: a loop of receive() calls holding a balance;
//   - the fee schedule is a plain event-based CAF actor;
//   - the audit log is a tasklet actor that collects lines;
//   - the bank itself is a service: each request runs in its own tasklet and blocks, in plain
//     sequential code, on requests to the fee schedule and the accounts.
#pragma once

#include <twistlet/actor.hpp>

#include <caf/event_based_actor.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace bank {

namespace ta = twistlet::actor;
using namespace std::chrono_literals;

using balance_atom = caf::atom_constant<caf::atom("balance")>;
using deposit_atom = caf::atom_constant<caf::atom("deposit")>;
using withdraw_atom = caf::atom_constant<caf::atom("withdraw")>;
using transfer_atom = caf::atom_constant<caf::atom("transfer")>;
using fee_atom = caf::atom_constant<caf::atom("fee")>;
using log_atom = caf::atom_constant<caf::atom("log")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

struct insufficient_funds : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// An account opened with `opening`: a tasklet actor.
inline auto account(int opening) {
  return [opening](ta::tasklet_actor& self) {
    int balance = opening;
    for (;;) {
      try {
        self.receive([&](balance_atom) { return balance; },
                     [&](deposit_atom, int amount) { return balance += amount; },
                     [&](withdraw_atom, int amount) {
                       if (amount > balance)
                         throw insufficient_funds(self.name() + " has " + std::to_string(balance) + ", needs " +
                                                  std::to_string(amount));
                       return balance -= amount;
                     });
      } catch (const insufficient_funds&) {
        // The request was answered with the error; the account stays open.
      }
    }
  };
}

/// The fee schedule: a plain CAF actor (`percent` %, at least 1).
inline caf::behavior fee_schedule(caf::event_based_actor*, int percent) {
  return {[percent](fee_atom, int amount) { return std::max(1, amount * percent / 100); }};
}

/// The audit log: a tasklet actor.
inline void audit_log(ta::tasklet_actor& self) {
  std::vector<std::string> lines;
  for (;;) {
    self.receive([&](log_atom, const std::string& line) { lines.push_back(line); },
                 [&](log_atom) {
                   // Transfers run concurrently; sorted, the log reads the same every run.
                   std::vector<std::string> sorted = lines;
                   std::sort(sorted.begin(), sorted.end());
                   std::string all;
                   for (auto& l : sorted) all += l + "\n";
                   return all;
                 });
  }
}

/// The bank's front: a service. `on_stop` runs for a stop request.
inline caf::actor open_bank(ta::hub& h, std::map<std::string, caf::actor> accounts, caf::actor fees, caf::actor audit,
                            std::function<void()> on_stop) {
  auto find = [accounts](const std::string& who) {
    auto i = accounts.find(who);
    if (i == accounts.end()) throw std::invalid_argument("no account '" + who + "'");
    return i->second;
  };
  return h.spawn_service(
      {.name = "bank"},
      [find](balance_atom, const std::string& who) {
        return twistlet::block_on(ta::request<int>(find(who), 1s, balance_atom::value));
      },
      [find, fees, audit](transfer_atom, const std::string& from, const std::string& to, int amount) {
        const caf::actor source = find(from);
        const caf::actor target = find(to);
        const int fee = twistlet::block_on(ta::request<int>(fees, 1s, fee_atom::value, amount));
        // insufficient_funds in the account comes back here as remote_error and, uncaught,
        // goes on to whoever asked the bank.
        twistlet::block_on(ta::request<int>(source, 1s, withdraw_atom::value, amount + fee));
        twistlet::block_on(ta::request<int>(target, 1s, deposit_atom::value, amount));
        std::string receipt = from + " -> " + to + " " + std::to_string(amount) + " (fee " + std::to_string(fee) + ")";
        ta::send(audit, log_atom::value, receipt);
        return receipt;
      },
      [audit](log_atom) { return twistlet::block_on(ta::request<std::string>(audit, 1s, log_atom::value)); },
      [on_stop](stop_atom) { on_stop(); });
}

/// Drives the bank from a tasklet (or main) of a hub; `say` prints one transcript line.
inline void run_demo(const caf::actor& bank, const std::function<void(const std::string&)>& say) {
  struct transfer {
    std::string from, to;
    int amount;
  };
  // Independent enough that every order of completion leaves the same transcript.
  const std::vector<transfer> transfers{
      {"alice", "bob", 30}, {"bob", "carol", 20}, {"alice", "carol", 10}, {"dave", "alice", 500}};
  say("four transfers at once, each in its own tasklet of the bank service:");
  std::vector<twistlet::deferred<std::string>> pending;
  for (const auto& t : transfers)
    pending.push_back(ta::request<std::string>(bank, 2s, transfer_atom::value, t.from, t.to, t.amount));
  for (std::size_t i = 0; i < pending.size(); ++i) {
    try {
      say("  ok: " + twistlet::block_on(pending[i]));
    } catch (const ta::remote_error& e) {
      say("  refused: " + transfers[i].from + " -> " + transfers[i].to + " " + std::to_string(transfers[i].amount) +
          ": " + e.what() + " (" + e.type_name + " in the account actor)");
    }
  }
  std::string balances = "balances:";
  for (const char* who : {"alice", "bob", "carol", "dave"})
    balances += std::string(" ") + who + " " +
                std::to_string(twistlet::block_on(ta::request<int>(bank, 2s, balance_atom::value, std::string(who))));
  say(balances);
  try {
    twistlet::block_on(ta::request<int>(bank, 2s, balance_atom::value, std::string("eve")));
  } catch (const ta::remote_error& e) {
    say(std::string("eve: ") + e.what());
  }
  say("audit log:");
  std::istringstream log(twistlet::block_on(ta::request<std::string>(bank, 2s, log_atom::value)));
  for (std::string line; std::getline(log, line);) say("  " + line);
}

}  // namespace bank
