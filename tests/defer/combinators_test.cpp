// deferred_list, gather_results, race (SEMANTICS §3.7).
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <twistlet/deferred.hpp>

using namespace twistlet;

namespace {
struct error_log {
  std::vector<std::string> messages;
  unhandled_error_handler old;
  error_log() {
    old = set_unhandled_error_handler([this](const failure& f) { messages.push_back(f.what()); });
  }
  ~error_log() { set_unhandled_error_handler(old); }
};

struct boom : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class T>
std::vector<outcome<T>> take(deferred<std::vector<outcome<T>>> d) {
  std::vector<outcome<T>> out;
  d.add_callback([&](std::vector<outcome<T>> v) { out = std::move(v); });
  return out;
}
}  // namespace

TEST_CASE("deferred_list collects every outcome in input order") {
  error_log errors;
  deferred<int> a, b, c;
  auto list = deferred_list<int>({a, b, c});
  c.callback(3);
  b.errback(failure::make(boom("b failed")));
  CHECK_FALSE(list.called());
  a.callback(1);
  auto out = take(list);
  REQUIRE(out.size() == 3);
  CHECK(out[0].value() == 1);
  CHECK(out[1].error().what() == "b failed");
  CHECK(out[2].value() == 3);
  b.add_errback([](const failure&) { return 0; });
  CHECK(errors.messages.empty());
}

TEST_CASE("deferred_list of nothing fires an empty list at once") {
  auto list = deferred_list<int>({});
  CHECK(list.called());
  CHECK(take(list).empty());
}

TEST_CASE("deferred_list handles fired inputs during construction, in input order") {
  std::vector<int> order;
  deferred<int> a = succeed(1);
  deferred<int> b = succeed(2);
  a.add_callback([&](int v) {
    order.push_back(v);
    return v;
  });
  b.add_callback([&](int v) {
    order.push_back(v);
    return v;
  });
  auto list = deferred_list<int>({b, a});
  CHECK(list.called());
  auto out = take(list);
  CHECK(out[0].value() == 2);
  CHECK(out[1].value() == 1);
}

TEST_CASE("deferred_list leaves each input's result to its later stages") {
  deferred<int> a;
  auto list = deferred_list<int>({a});
  int later = 0;
  a.add_callback([&](int v) { later = v; });
  a.callback(5);
  CHECK(later == 5);
  CHECK(take(list)[0].value() == 5);
}

TEST_CASE("deferred_list with fire_on_one_errback fails with first_error and the index") {
  error_log errors;
  deferred<int> a, b;
  auto list = deferred_list<int>({a, b}, {.fire_on_one_errback = true, .consume_errors = true});
  b.errback(failure::make(boom("second")));
  std::size_t index = 99;
  std::string sub;
  list.add_errback([&](const failure& f) {
    const first_error* e = f.get<first_error>();
    REQUIRE(e != nullptr);
    index = e->index;
    sub = e->sub_failure.what();
    return std::vector<outcome<int>>{};
  });
  CHECK(index == 1);
  CHECK(sub == "second");
  a.callback(1);  // a later completion does not fire the list again
  CHECK(errors.messages.empty());
}

TEST_CASE("deferred_list fires only once however many inputs complete later") {
  error_log errors;
  int fired = 0;
  deferred<int> a, b;
  auto list = deferred_list<int>({a, b}, {.fire_on_one_errback = true, .consume_errors = true});
  list.add_both([&](outcome<std::vector<outcome<int>>>) { ++fired; });
  a.errback(failure::make(boom("a")));
  b.errback(failure::make(boom("b")));
  CHECK(fired == 1);
  CHECK(errors.messages.empty());
}

TEST_CASE("deferred_list with consume_errors keeps input failures from being reported") {
  error_log errors;
  {
    deferred<int> a;
    auto list = deferred_list<int>({a}, {.consume_errors = true});
    a.errback(failure::make(boom("quiet")));
    CHECK_FALSE(take(list)[0].has_value());
  }
  CHECK(errors.messages.empty());
}

TEST_CASE("deferred_list without consume_errors leaves input failures to be reported") {
  error_log errors;
  {
    deferred<int> a;
    auto list = deferred_list<int>({a});
    a.errback(failure::make(boom("loud")));
    take(list);
  }
  CHECK(errors.messages == std::vector<std::string>{"loud"});
}

TEST_CASE("cancelling a deferred_list cancels the inputs that have not fired") {
  error_log errors;
  deferred<int> a = succeed(1);
  int cancelled = 0;
  deferred<int> b([&](deferred<int>&) { ++cancelled; });
  auto list = deferred_list<int>({a, b}, {.consume_errors = true});
  list.cancel();
  CHECK(cancelled == 1);
  auto out = take(list);
  REQUIRE(out.size() == 2);
  CHECK(out[0].value() == 1);
  CHECK(out[1].error().check<cancelled_error>());
  list.cancel();  // fired: nothing happens
  CHECK(cancelled == 1);
}

TEST_CASE("a canceller that throws does not stop deferred_list from cancelling the rest") {
  error_log errors;
  deferred<int> a([](deferred<int>&) { throw boom("canceller"); });
  deferred<int> b;
  auto list = deferred_list<int>({a, b}, {.consume_errors = true});
  list.cancel();
  CHECK(b.called());
  CHECK(errors.messages == std::vector<std::string>{"canceller"});
  a.callback(1);
  CHECK(list.called());
}

TEST_CASE("gather_results gives the values in input order") {
  deferred<int> a, b;
  std::vector<int> out;
  gather_results<int>({a, b}).add_callback([&](std::vector<int> v) { out = v; });
  b.callback(2);
  a.callback(1);
  CHECK(out == std::vector<int>{1, 2});
}

TEST_CASE("gather_results of void inputs gives monostates") {
  std::size_t n = 0;
  gather_results<void>({succeed(), succeed()}).add_callback([&](std::vector<std::monostate> v) { n = v.size(); });
  CHECK(n == 2);
}

TEST_CASE("gather_results fails with first_error") {
  error_log errors;
  deferred<int> a, b;
  std::size_t index = 99;
  gather_results<int>({a, b}, true).add_errback([&](const failure& f) {
    index = f.get<first_error>()->index;
    return std::vector<int>{};
  });
  a.errback(failure::make(boom("a")));
  CHECK(index == 0);
  b.callback(1);
  CHECK(errors.messages.empty());
}

TEST_CASE("cancelling gather_results cancels its inputs") {
  error_log errors;
  deferred<int> a, b;
  auto g = gather_results<int>({a, b}, true);
  g.cancel();
  CHECK(a.called());
  CHECK(b.called());
  bool cancelled = false;
  g.add_errback([&](const failure& f) {
    cancelled = f.get<first_error>()->sub_failure.check<cancelled_error>();
    return std::vector<int>{};
  });
  CHECK(cancelled);
}

TEST_CASE("race gives the first success with its index and cancels the rest") {
  error_log errors;
  deferred<int> a, b, c;
  std::pair<std::size_t, int> got{99, 0};
  race<int>({a, b, c}).add_callback([&](std::pair<std::size_t, int> p) { got = p; });
  b.callback(20);
  CHECK(got == std::pair<std::size_t, int>{1, 20});
  CHECK(a.called());
  CHECK(c.called());
  CHECK(errors.messages.empty());  // the losers' cancelled_errors are race's to handle
}

TEST_CASE("race ignores failures while another input may still succeed") {
  error_log errors;
  deferred<int> a, b;
  std::pair<std::size_t, int> got{99, 0};
  race<int>({a, b}).add_callback([&](std::pair<std::size_t, int> p) { got = p; });
  a.errback(failure::make(boom("a")));
  CHECK(got.first == 99);
  b.callback(2);
  CHECK(got == std::pair<std::size_t, int>{1, 2});
  CHECK(errors.messages.empty());
}

TEST_CASE("race fails with all_failed_error holding every failure in input order") {
  deferred<int> a, b;
  std::vector<std::string> whats;
  auto r = race<int>({a, b});
  r.add_errback([&](const failure& f) {
    for (auto& sub : f.get<all_failed_error>()->failures) whats.push_back(sub.what());
    return std::pair<std::size_t, int>{};
  });
  b.errback(failure::make(boom("b")));
  a.errback(failure::make(boom("a")));
  CHECK(whats == std::vector<std::string>{"a", "b"});
}

TEST_CASE("race of nothing fails at once with an empty all_failed_error") {
  bool empty = false;
  race<int>({}).add_errback([&](const failure& f) {
    empty = f.get<all_failed_error>()->failures.empty();
    return std::pair<std::size_t, int>{};
  });
  CHECK(empty);
}

TEST_CASE("cancelling a race cancels every input") {
  deferred<int> a, b;
  auto r = race<int>({a, b});
  r.cancel();
  CHECK(a.called());
  CHECK(b.called());
  bool all_failed = false;
  r.add_errback([&](const failure& f) {
    all_failed = f.check<all_failed_error>();
    return std::pair<std::size_t, int>{};
  });
  CHECK(all_failed);
}

TEST_CASE("race consumes its inputs") {
  deferred<int> a;
  race<int>({a});
  CHECK_THROWS_WITH(a.add_callback([](int) {}), Catch::Contains("consumed"));
  a.callback(1);
}

TEST_CASE("race of void inputs gives the index") {
  deferred<void> a, b;
  std::size_t index = 99;
  race<void>({a, b}).add_callback([&](std::pair<std::size_t, std::monostate> p) { index = p.first; });
  a.callback();
  CHECK(index == 0);
}

TEST_CASE("deferred_list, gather_results and race take a braced list without naming T") {
  error_log errors;
  deferred<int> a, b;
  std::vector<outcome<int>> listed;
  deferred_list({a, b}).add_callback([&](std::vector<outcome<int>> v) { listed = std::move(v); });
  std::vector<int> gathered;
  gather_results({a, b}).add_callback([&](std::vector<int> v) { gathered = v; });
  deferred<int> c, d;
  std::pair<std::size_t, int> raced{99, 0};
  race({c, d}).add_callback([&](std::pair<std::size_t, int> p) { raced = p; });
  b.callback(2);
  a.callback(1);
  d.callback(4);
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].value() == 1);
  CHECK(listed[1].value() == 2);
  CHECK(gathered == std::vector<int>{1, 2});
  CHECK(raced == std::pair<std::size_t, int>{1, 4});
  CHECK(c.called());  // the loser was cancelled
  CHECK(errors.messages.empty());
}

TEST_CASE("the braced-list overloads pass options and void inputs through") {
  error_log errors;
  deferred<void> a, b;
  bool first_failed = false;
  deferred_list({a, b}, {.fire_on_one_errback = true, .consume_errors = true})
      .add_errback([&](const failure& f) {
        first_failed = f.get<first_error>()->index == 1;
        return std::vector<outcome<void>>{};
      });
  std::size_t n = 0;
  gather_results({succeed(), succeed(), succeed()}, true).add_callback([&](std::vector<std::monostate> v) {
    n = v.size();
  });
  std::size_t winner = 99;
  race({deferred<void>(), succeed()}).add_callback([&](std::pair<std::size_t, std::monostate> p) { winner = p.first; });
  b.errback(failure::make(boom("b")));
  a.callback();
  CHECK(first_failed);
  CHECK(n == 3);
  CHECK(winner == 1);
  CHECK(errors.messages.empty());
}
