// The idea twistlet grew from, "Stackless Python meets Twisted Matrix" (2008), written with
// twistlet: the reactor runs in its own tasklet; plain functions become tasklets through
// deferred_tasklet (the caller gets a deferred) and blocking_tasklet (the caller blocks until
// the value is there); each one is ordinary sequential code that sleeps on reactor timers and
// blocks on the others' results. A failure thrown in one tasklet is caught in another, and a
// killed tasklet's exit is filtered instead of being reported as an unhandled error.
//
// A small shop: two customers ask for quotes; each quote looks up prices in a slow warehouse
// (one tasklet per item, all at once) and asks a tax service (a deferred from defer_later);
// a supplier that would take an hour is killed when the shop closes.
#include <twistlet/twistlet.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

using namespace twistlet;
using namespace std::chrono_literals;

namespace {

struct out_of_stock : std::runtime_error {
  explicit out_of_stock(const std::string& item) : std::runtime_error(item + " is out of stock") {}
};

std::string cents(int c) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%d.%02d", c / 100, c % 100);
  return buf;
}

std::string joined(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

}  // namespace

int main() {
  reactor r;
  int unhandled = 0;
  set_unhandled_error_handler([&](const failure& f) {
    ++unhandled;
    std::printf("Unhandled error in Deferred: %s\n", f.what().c_str());
  });
  const std::map<std::string, int> prices{{"apple", 120}, {"pear", 130}};

  // A warehouse lookup is slow, like a database query. As a deferred_tasklet, each call runs
  // in a tasklet of its own and hands back a deferred at once, so lookups overlap.
  auto lookup_price = deferred_tasklet([&](const std::string& item) {
    twistlet::sleep(10ms);
    auto it = prices.find(item);
    if (it == prices.end()) throw out_of_stock(item);
    return it->second;
  });

  // The tax service speaks Twisted: it returns a deferred that a reactor timer fires.
  auto tax_on = [&](int amount) { return defer_later(r, 5ms, [amount] { return amount * 8 / 100; }); };

  // A quote is sequential code: start the lookups, then wait for each result in turn. As a
  // blocking_tasklet, its caller simply gets the number (or the exception).
  auto quote = blocking_tasklet([&](const std::vector<std::string>& items) {
    std::vector<deferred<int>> lookups;
    for (const auto& item : items) lookups.push_back(lookup_price(item));
    int total = 0;
    for (auto& d : lookups) total += block_on(d);  // rethrows a lookup's out_of_stock here
    return total + block_on(tax_on(total));
  });

  auto customer = deferred_tasklet([&](const std::string& name, const std::vector<std::string>& items) {
    std::printf("%s: asks for a quote on %s\n", name.c_str(), joined(items).c_str());
    try {
      const int price = quote(items);
      std::printf("%s: pays %s, tax included\n", name.c_str(), cents(price).c_str());
    } catch (const out_of_stock& e) {
      std::printf("%s: is told \"%s\" (thrown in a warehouse tasklet, caught in %s's)\n", name.c_str(), e.what(),
                  name.c_str());
    }
  });

  tasklet supplier;
  bool supplier_unwound = false;
  auto restock = deferred_tasklet([&] {
    supplier = getcurrent();
    std::printf("supplier: restocking unicorns, back in an hour\n");
    try {
      twistlet::sleep(1h);
    } catch (const tasklet_exit&) {
      supplier_unwound = true;
      std::printf("supplier: killed in its sleep; tasklet_exit unwinds it\n");
      throw;
    }
    std::printf("supplier: back with unicorns\n");
  });

  // The shop's day, itself a tasklet that blocks on the others.
  bool day_done = false;
  bool supplier_filtered = false;
  auto day = deferred_tasklet([&] {
    std::printf("shop: opens (sequential code in a tasklet)\n");
    deferred<void> supply = restock();
    using list = std::vector<std::string>;
    std::vector<deferred<void>> customers{customer(std::string("Alice"), list{"apple", "pear"}),
                                          customer(std::string("Bob"), list{"apple", "unicorn"})};
    std::printf("shop: waits for both customers\n");
    block_on(gather_results(std::move(customers)));
    std::printf("shop: everyone served; closing, so the supplier is killed\n");
    supplier.kill();
    // Left unhandled on purpose: a killed tasklet's deferred carries an exit signal, which is
    // filtered, so nothing is reported when the deferred goes away.
    supply.add_errback([&](const failure& f) {
      supplier_filtered = f.check<tasklet_killed_error>();
      std::printf("shop: the supplier's deferred failed with tasklet_killed_error; nobody handles it\n");
      f.raise();
    });
    supply = deferred<void>();
    std::printf("shop: stops the reactor\n");
    r.stop();
    day_done = true;
  });

  std::printf("main: starts the shop's day, then runs the reactor in its own tasklet\n");
  day();
  r.run();
  std::printf("main: the reactor has stopped; %d unhandled error(s) reported\n", unhandled);

  const bool ok = day_done && supplier_unwound && supplier_filtered && unhandled == 0;
  return ok ? 0 : 1;
}
