// Waiting for several deferreds at once.
#include <twistlet/deferred.hpp>

#include <cstdio>
#include <stdexcept>
#include <vector>

using namespace twistlet;

int main() {
  // [list]
  std::vector<deferred<int>> a(3);
  deferred_list(a, {.consume_errors = true}).add_callback([](const std::vector<outcome<int>>& results) {
    for (const outcome<int>& r : results)
      if (r.has_value())
        std::printf("  ok %d\n", r.value());
      else
        std::printf("  failed: %s\n", r.error().what().c_str());
  });
  a[2].callback(30);  // completion order does not matter: results keep input order
  a[0].callback(10);
  a[1].errback(std::make_exception_ptr(std::runtime_error("disk full")));
  // [list]

  // [gather]
  std::vector<deferred<int>> b(3);
  gather_results(b, /*consume_errors=*/true)
      .add_callbacks([](const std::vector<int>& v) { std::printf("  sum %d\n", v[0] + v[1] + v[2]); },
                     [](const failure& f) {
                       const first_error* e = f.get<first_error>();
                       std::printf("  input %zu failed: %s\n", e->index, e->sub_failure.what().c_str());
                     });
  b[0].callback(1);
  b[1].errback(std::make_exception_ptr(std::runtime_error("timeout")));  // fires the gather at once
  b[2].callback(3);
  // [gather]

  // [race]
  std::vector<deferred<int>> c;
  for (int i = 0; i < 3; ++i)
    c.emplace_back([i](deferred<int>&) { std::printf("  mirror %d cancelled\n", i); });
  race(c).add_callback([](std::pair<std::size_t, int> winner) {
    std::printf("  mirror %zu won with %d\n", winner.first, winner.second);
  });
  c[1].callback(200);  // the first success wins; the others are cancelled
  // [race]
}
