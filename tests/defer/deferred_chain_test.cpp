// The callback chain: tracks, chaining, re-entrancy, typing (SEMANTICS §3.2-3.3).
#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <twistlet/deferred.hpp>

using namespace twistlet;

namespace {

// Records unhandled-error reports for the duration of a test.
struct error_log {
  std::vector<std::string> messages;
  unhandled_error_handler old;
  error_log() {
    old = set_unhandled_error_handler([this](const failure& f) { messages.push_back(f.what()); });
  }
  ~error_log() { set_unhandled_error_handler(old); }
};

struct boom : std::runtime_error {
  boom() : std::runtime_error("boom") {}
};

}  // namespace

TEST_CASE("callbacks run in the order added, each receiving the previous result") {
  std::vector<std::string> log;
  deferred<int> d;
  d.add_callback([&](int v) {
     log.push_back("a" + std::to_string(v));
     return v * 2;
   })
      .add_callback([&](int v) {
        log.push_back("b" + std::to_string(v));
        return std::to_string(v) + "!";
      })
      .add_callback([&](std::string s) { log.push_back("c" + s); });
  CHECK(log.empty());
  d.callback(21);
  CHECK(log == std::vector<std::string>{"a21", "b42", "c42!"});
  CHECK(d.called());
}

TEST_CASE("a stage added to a fired deferred runs at once") {
  deferred<int> d = succeed(7);
  int seen = 0;
  d.add_callback([&](int v) { seen = v; });
  CHECK(seen == 7);
}

TEST_CASE("a callback may ignore the value by taking no argument") {
  int calls = 0;
  succeed(3).add_callback([&] { ++calls; }).add_callback([&] { ++calls; });
  CHECK(calls == 2);
}

TEST_CASE("values larger than the inline slot and move-only values flow through the chain") {
  std::vector<int> got;
  auto d = succeed(std::vector<int>{1, 2, 3})
               .add_callback([](std::vector<int> v) {
                 v.push_back(4);
                 return std::make_unique<std::vector<int>>(std::move(v));
               })
               .add_callback([&](std::unique_ptr<std::vector<int>> p) { got = *p; });
  CHECK(got == std::vector<int>{1, 2, 3, 4});
  struct big {
    char bytes[200];
    int tag;
  };
  int tag = 0;
  succeed(big{{}, 9}).add_callback([&](big b) { tag = b.tag; });
  CHECK(tag == 9);
}

TEST_CASE("an exception thrown by a callback switches to the errback track") {
  std::vector<std::string> log;
  deferred<int> d;
  d.add_callback([&](int) -> int { throw boom(); })
      .add_callback([&](int v) {
        log.push_back("skipped");
        return v;
      })
      .add_errback([&](const failure& f) {
        log.push_back("errback " + f.what());
        return 0;
      });
  d.callback(1);
  CHECK(log == std::vector<std::string>{"errback boom"});
}

TEST_CASE("tasklet_exit thrown in a callback becomes a failure result") {
  bool trapped = false;
  succeed(1).add_callback([](int) { throw tasklet_exit{}; }).add_errback([&](const failure& f) {
    trapped = f.check<tasklet_exit>();
  });
  CHECK(trapped);
}

TEST_CASE("an errback that returns a value switches back to the callback track") {
  std::vector<std::string> log;
  fail<int>(failure::make(boom()))
      .add_callback([&](int v) {
        log.push_back("skipped");
        return v;
      })
      .add_errback([&](const failure&) { return 5; })
      .add_callback([&](int v) { log.push_back("value " + std::to_string(v)); });
  CHECK(log == std::vector<std::string>{"value 5"});
}

TEST_CASE("an errback that throws keeps the chain failed") {
  error_log errors;
  std::vector<std::string> log;
  fail<int>(failure::make(boom()))
      .add_errback([&](const failure& f) -> int {
        f.trap<std::logic_error>();  // not a logic_error: rethrows the original
        return 1;
      })
      .add_errback([&](const failure& f) -> int {
        log.push_back(f.check<boom>() ? "still boom" : "other");
        throw std::logic_error("replaced");
      })
      .add_errback([&](const failure& f) {
        log.push_back(f.what());
        return 0;
      });
  CHECK(log == std::vector<std::string>{"still boom", "replaced"});
  CHECK(errors.messages.empty());
}

TEST_CASE("add_callbacks runs exactly one of its two functions") {
  std::vector<std::string> log;
  auto on_value = [&](int v) {
    log.push_back("value");
    return v;
  };
  auto on_failure = [&](const failure&) {
    log.push_back("failure");
    return -1;
  };
  int a = 0, b = 0;
  succeed(4).add_callbacks(on_value, on_failure).add_callback([&](int v) { a = v; });
  fail<int>(failure::make(boom())).add_callbacks(on_value, on_failure).add_callback([&](int v) { b = v; });
  CHECK(log == std::vector<std::string>{"value", "failure"});
  CHECK(a == 4);
  CHECK(b == -1);
}

TEST_CASE("add_callbacks' failure function may throw to stay on the error track") {
  bool failed = false;
  fail<int>(failure::make(boom()))
      .add_callbacks([](int v) { return v; }, [](const failure& f) -> int { f.raise(); })
      .add_errback([&](const failure& f) {
        failed = f.check<boom>();
        return 0;
      });
  CHECK(failed);
}

TEST_CASE("add_both sees values and failures, and returning an outcome passes either on") {
  std::vector<std::string> log;
  auto tap = [&](outcome<int> o) {
    log.push_back(o.has_value() ? "value" : "failure");
    return o;
  };
  int v = 0;
  succeed(3).add_both(tap).add_callback([&](int x) { v = x; });
  bool failed = false;
  fail<int>(failure::make(boom())).add_both(tap).add_errback([&](const failure& f) {
    failed = f.check<boom>();
    return 0;
  });
  CHECK(log == std::vector<std::string>{"value", "failure"});
  CHECK(v == 3);
  CHECK(failed);
}

TEST_CASE("add_both can recover from a failure with a new type") {
  std::string s;
  fail<int>(failure::make(boom()))
      .add_both([](outcome<int> o) { return o.has_value() ? std::string("ok") : std::string("recovered"); })
      .add_callback([&](std::string v) { s = v; });
  CHECK(s == "recovered");
}

TEST_CASE("firing twice throws already_called_error for CC, CE, EC and EE") {
  {
    deferred<int> d;
    d.callback(1);
    CHECK_THROWS_AS(d.callback(2), already_called_error);
  }
  {
    deferred<int> d;
    d.callback(1);
    CHECK_THROWS_AS(d.errback(failure::make(boom())), already_called_error);
  }
  error_log errors;
  {
    deferred<int> d;
    d.errback(failure::make(boom()));
    CHECK_THROWS_AS(d.callback(1), already_called_error);
    d.add_errback([](const failure&) { return 0; });
  }
  {
    deferred<void> d;
    d.errback(std::make_exception_ptr(boom()));
    CHECK_THROWS_AS(d.errback(failure::make(boom())), already_called_error);
    d.add_errback([](const failure&) {});
  }
  CHECK(errors.messages.empty());
}

TEST_CASE("errback with a null exception_ptr is refused") {
  deferred<int> d;
  CHECK_THROWS_AS(d.errback(std::exception_ptr()), std::invalid_argument);
  CHECK_FALSE(d.called());
}

TEST_CASE("a paused deferred runs no stages until the matching unpause") {
  std::vector<int> log;
  deferred<int> d;
  d.add_callback([&](int v) { log.push_back(v); });
  d.pause();
  d.pause();
  CHECK(d.paused());
  d.callback(1);
  CHECK(log.empty());
  d.unpause();
  CHECK(log.empty());
  d.unpause();
  CHECK(log == std::vector<int>{1});
  CHECK_FALSE(d.paused());
}

TEST_CASE("a paused deferred holds a failure until unpaused") {
  error_log errors;
  bool seen = false;
  deferred<int> d;
  d.pause();
  d.errback(failure::make(boom()));
  d.add_errback([&](const failure&) {
    seen = true;
    return 0;
  });
  CHECK_FALSE(seen);
  d.unpause();
  CHECK(seen);
  CHECK(errors.messages.empty());
}

TEST_CASE("unpause without a pause is a logic error") {
  deferred<int> d;
  CHECK_THROWS_AS(d.unpause(), std::logic_error);
}

TEST_CASE("a stage returning an unfired deferred pauses the chain until it fires") {
  std::vector<std::string> log;
  deferred<int> inner;
  deferred<int> outer;
  outer.add_callback([&](int) { return inner; }).add_callback([&](int v) { log.push_back("got " + std::to_string(v)); });
  outer.callback(0);
  CHECK(outer.paused());
  CHECK(log.empty());
  inner.callback(5);
  CHECK(log == std::vector<std::string>{"got 5"});
  CHECK_FALSE(outer.paused());
}

TEST_CASE("a stage returning a fired deferred steals its result") {
  error_log errors;
  int v = 0;
  deferred<int> inner = succeed(8);
  succeed(1).add_callback([&](int) { return inner; }).add_callback([&](int x) { v = x; });
  CHECK(v == 8);
  CHECK_FALSE(inner.has_result());

  bool failed = false;
  deferred<int> bad = fail<int>(failure::make(boom()));
  succeed(1).add_callback([&](int) { return bad; }).add_errback([&](const failure& f) {
    failed = f.check<boom>();
    return 0;
  });
  CHECK(failed);
  bad = deferred<int>();
  CHECK(errors.messages.empty());  // the stolen failure is the outer's, and it was handled
}

TEST_CASE("a deferred whose result went to an outer deferred takes no more stages") {
  deferred<int> inner;
  deferred<int> outer = succeed(1);
  outer.add_callback([&](int) { return inner; });
  CHECK_THROWS_WITH(inner.add_callback([](int) {}), Catch::Contains("another deferred"));
  inner.callback(3);  // firing it is how the outer gets its result
  int v = 0;
  outer.add_callback([&](int x) { v = x; });
  CHECK(v == 3);

  deferred<int> stolen = succeed(4);
  succeed(0).add_callback([&](int) { return stolen; });
  CHECK_THROWS_AS(stolen.add_callback([](int) {}), std::logic_error);
}

TEST_CASE("the outer chain runs before the inner's callback() returns") {
  std::vector<std::string> log;
  deferred<int> inner;
  deferred<int> outer = succeed(0);
  outer.add_callback([&](int) { return inner; }).add_callback([&](int) { log.push_back("outer"); });
  inner.callback(1);
  log.push_back("after inner.callback");
  CHECK(log == std::vector<std::string>{"outer", "after inner.callback"});
}

TEST_CASE("returning a deferred that was already chained elsewhere fails the stage") {
  deferred<int> inner;
  succeed(0).add_callback([&](int) { return inner; });
  std::string why;
  succeed(0).add_callback([&](int) { return inner; }).add_errback([&](const failure& f) {
    why = f.what();
    return 0;
  });
  CHECK(why.find("another deferred") != std::string::npos);
  inner.callback(1);
}

TEST_CASE("callbacks added during a running callback are appended, not run recursively") {
  std::vector<int> log;
  deferred<int> d;
  d.add_callback([&](int v) {
    d.add_callback([&](int) { log.push_back(3); });
    log.push_back(1);
    CHECK(d.chain_running());
    return v;
  });
  d.add_callback([&](int v) {
    log.push_back(2);
    return v;
  });
  d.callback(0);
  CHECK(log == std::vector<int>{1, 2, 3});
  CHECK_FALSE(d.chain_running());
}

TEST_CASE("a callback that fires another chain which adds to the first keeps both orders") {
  std::vector<std::string> log;
  deferred<int> a;
  deferred<int> b;
  b.add_callback([&](int) {
    log.push_back("b1");
    a.add_callback([&](int) { log.push_back("a-from-b"); });
  });
  a.add_callback([&](int v) {
    log.push_back("a1");
    b.callback(0);
    log.push_back("a1-end");
    return v;
  });
  a.add_callback([&](int v) {
    log.push_back("a2");
    return v;
  });
  a.callback(0);
  CHECK(log == std::vector<std::string>{"a1", "b1", "a1-end", "a2", "a-from-b"});
}

TEST_CASE("a chain of 100000 nested deferreds runs without growing the stack") {
  constexpr int n = 100000;
  std::vector<deferred<int>> inners(n);
  deferred<int> top;
  const char* base = nullptr;
  std::ptrdiff_t depth = -1;
  top.add_callback([&](int) { return inners[0]; });
  top.add_callback([&](int v) {
    char here;
    depth = base - &here;
    return v;
  });
  for (int i = 0; i + 1 < n; ++i) {
    deferred<int> next = inners[i + 1];
    inners[i].add_callback([next](int) { return next; });
  }
  deferred<int> last;
  inners[n - 1].add_callback([last](int) { return last; });
  top.callback(0);
  for (auto& d : inners) d.callback(0);
  CHECK(depth == -1);
  char anchor;
  base = &anchor;
  last.callback(42);
  REQUIRE(depth != -1);
  CHECK(depth < 64 * 1024);
  int v = 0;
  top.add_callback([&](int x) { v = x; });
  CHECK(v == 42);
  inners.clear();  // dropping the whole structure must not recurse either
}

TEST_CASE("dropping a long chain of waiting deferreds does not recurse") {
  std::vector<deferred<int>> ds(100000);
  for (std::size_t i = 0; i + 1 < ds.size(); ++i) {
    deferred<int> next = ds[i + 1];
    ds[i].add_callback([next](int) { return next; });
  }
  for (std::size_t i = 0; i + 1 < ds.size(); ++i) ds[i].callback(0);
  CHECK(ds[0].paused());
  ds.clear();
  SUCCEED();
}

TEST_CASE("a stage returning its own deferred gives a logic_error failure") {
  std::string why;
  deferred<int> d;
  d.add_callback([&](int) { return d; }).add_errback([&](const failure& f) {
    why = f.what();
    return 0;
  });
  d.callback(1);
  CHECK(why.find("deferred it belongs to") != std::string::npos);
}

TEST_CASE("a stage returning a deferred that waits on this one gives a logic_error failure") {
  deferred<int> a;
  deferred<int> b;
  std::string why;
  a.add_callback([&](int) { return b; }).add_errback([&](const failure& f) {
    why = f.what();
    return 0;
  });
  b.add_callback([&](int) { return a; });
  b.callback(0);  // b now waits on a
  a.callback(0);  // and a's stage would make a wait on b
  CHECK(why.find("cycle") != std::string::npos);
}

TEST_CASE("a stale handle adding a stage of the wrong type throws logic_error naming both types") {
  deferred<int> d;
  d.add_callback([](int v) { return std::to_string(v); });
  try {
    d.add_callback([](int) {});
    FAIL("no exception");
  } catch (const std::logic_error& e) {
    std::string what = e.what();
    CHECK(what.find("deferred<int>") != std::string::npos);
    CHECK(what.find("std::__cxx11::basic_string") != std::string::npos);
  }
}

TEST_CASE("callback through a handle whose type is not the chain's first type is a logic error") {
  deferred<int> d;
  deferred<std::string> later = d.add_callback([](int v) { return std::to_string(v); });
  CHECK_THROWS_AS(later.callback("x"), std::logic_error);
  CHECK_FALSE(d.called());
}

TEST_CASE("a stage returning a stale deferred handle fails with a logic_error") {
  deferred<int> inner;
  inner.add_callback([](int v) { return std::to_string(v); });
  bool failed = false;
  succeed(0).add_callback([&](int) { return inner; }).add_errback([&](const failure& f) {
    failed = f.check<std::logic_error>();
    return 0;
  });
  CHECK(failed);
}

TEST_CASE("an empty (moved-from) handle throws logic_error") {
  deferred<int> a;
  deferred<int> b = std::move(a);
  CHECK_THROWS_AS(a.callback(1), std::logic_error);
  CHECK_THROWS_AS(a.add_callback([](int) {}), std::logic_error);
  CHECK_THROWS_AS(a.cancel(), std::logic_error);
  CHECK_FALSE(a.called());
  CHECK_FALSE(a.paused());
}

TEST_CASE("handles are copies of one chain") {
  deferred<int> a;
  deferred<int> b = a;
  CHECK(a == b);
  CHECK_FALSE(a == deferred<int>());
  int v = 0;
  b.add_callback([&](int x) { v = x; });
  a.callback(6);
  CHECK(v == 6);
  CHECK(b.called());
}

TEST_CASE("succeed and fail make fired deferreds") {
  int v = 0;
  succeed(std::string("abc")).add_callback([&](const std::string& s) { v = static_cast<int>(s.size()); });
  CHECK(v == 3);
  bool ran = false;
  succeed().add_callback([&] { ran = true; });
  CHECK(ran);
  bool failed = false;
  fail<std::string>(failure::make(boom())).add_errback([&](const failure&) {
    failed = true;
    return std::string();
  });
  CHECK(failed);
}

TEST_CASE("maybe_deferred wraps values and exceptions and passes deferreds through") {
  int v = 0;
  maybe_deferred([](int x) { return x + 1; }, 1).add_callback([&](int x) { v = x; });
  CHECK(v == 2);

  bool failed = false;
  maybe_deferred([]() -> int { throw boom(); }).add_errback([&](const failure& f) {
    failed = f.check<boom>();
    return 0;
  });
  CHECK(failed);

  deferred<int> d;
  deferred<int> same = maybe_deferred([&] { return d; });
  CHECK(same == d);

  bool ran = false;
  maybe_deferred([] {}).add_callback([&] { ran = true; });
  CHECK(ran);
}

TEST_CASE("a stage returning an outcome takes its value or its failure") {
  int v = 0;
  succeed(1).add_callback([](int x) { return outcome<int>(x + 1); }).add_callback([&](int x) { v = x; });
  CHECK(v == 2);
  bool failed = false;
  succeed(1)
      .add_callback([](int) { return outcome<int>(failure::make(boom())); })
      .add_errback([&](const failure& f) {
        failed = f.check<boom>();
        return 0;
      });
  CHECK(failed);
}

TEST_CASE("an outer deferred paused by the user keeps its stolen result until unpaused") {
  deferred<int> inner;
  deferred<int> outer;
  int v = 0;
  outer.add_callback([&](int) { return inner; });
  outer.callback(0);
  outer.pause();
  outer.add_callback([&](int x) { v = x; });
  inner.callback(9);
  CHECK(v == 0);
  outer.unpause();
  CHECK(v == 9);
}
