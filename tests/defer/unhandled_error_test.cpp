// Unhandled-error reporting (SEMANTICS §3.9 and the exit-signal filter of §5.2).
#include <catch2/catch.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <unistd.h>
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
  boom() : std::runtime_error("boom") {}
};
}  // namespace

TEST_CASE("a failure ending a chain is reported once, when the last handle goes") {
  error_log errors;
  {
    deferred<int> d;
    deferred<int> copy = d;
    d.errback(failure::make(boom()));
    d = deferred<int>();
    CHECK(errors.messages.empty());
  }
  CHECK(errors.messages == std::vector<std::string>{"boom"});
}

TEST_CASE("a failure produced by a stage is reported") {
  error_log errors;
  succeed(1).add_callback([](int) { throw boom(); });
  CHECK(errors.messages == std::vector<std::string>{"boom"});
}

TEST_CASE("a failure consumed by an errback is not reported") {
  error_log errors;
  fail<int>(failure::make(boom())).add_errback([](const failure&) { return 1; });
  CHECK(errors.messages.empty());
}

TEST_CASE("a failure stolen by an outer deferred is reported only by the outer") {
  error_log errors;
  {
    deferred<int> inner = fail<int>(failure::make(boom()));
    deferred<int> outer = succeed(0).add_callback([&](int) { return inner; });
  }
  CHECK(errors.messages == std::vector<std::string>{"boom"});
}

TEST_CASE("a failure handed to a waiting outer deferred is not reported by the inner") {
  error_log errors;
  deferred<int> inner;
  {
    deferred<int> outer = succeed(0).add_callback([&](int) { return inner; });
    outer.add_errback([](const failure&) { return 0; });
  }
  inner.errback(failure::make(boom()));
  inner = deferred<int>();
  CHECK(errors.messages.empty());
}

TEST_CASE("a failure replaced by waiting on another deferred is not reported") {
  error_log errors;
  {
    deferred<int> never;
    deferred<int> d = fail<int>(failure::make(boom()));
    d.add_errback([&](const failure&) { return never; });
  }
  CHECK(errors.messages.empty());
}

TEST_CASE("exit signals are never reported") {
  error_log errors;
  fail<int>(failure::make(tasklet_exit{}));
  fail<int>(failure::make(tasklet_killed_error()));
  succeed(0).add_callback([](int) { throw tasklet_exit{}; });
  CHECK(errors.messages.empty());
}

TEST_CASE("report_unhandled_error calls the handler and filters exit signals") {
  error_log errors;
  report_unhandled_error(failure::make(tasklet_exit{}));
  report_unhandled_error(failure::make(tasklet_killed_error()));
  report_unhandled_error(failure::make(boom()));
  CHECK(errors.messages == std::vector<std::string>{"boom"});
}

TEST_CASE("set_unhandled_error_handler returns the previous handler") {
  int first = 0, second = 0;
  auto original = set_unhandled_error_handler([&](const failure&) { ++first; });
  auto mine = set_unhandled_error_handler([&](const failure&) { ++second; });
  report_unhandled_error(failure::make(boom()));
  mine(failure::make(boom()));
  CHECK(first == 1);
  CHECK(second == 1);
  set_unhandled_error_handler(original);
}

TEST_CASE("the default handler writes the failure to stderr") {
  auto previous = set_unhandled_error_handler(nullptr);  // the default
  std::FILE* capture = std::tmpfile();
  REQUIRE(capture != nullptr);
  std::fflush(stderr);
  int saved = ::dup(2);
  ::dup2(::fileno(capture), 2);
  report_unhandled_error(failure::make(boom()));
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::rewind(capture);
  char buf[256] = {};
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, capture);
  std::fclose(capture);
  set_unhandled_error_handler(previous);
  std::string text(buf, n);
  CHECK(text == "Unhandled error in Deferred:\nboom\n");
}

TEST_CASE("a handler that throws does not disturb the chain's destruction") {
  auto previous = set_unhandled_error_handler([](const failure&) { throw std::runtime_error("handler"); });
  CHECK_NOTHROW(fail<int>(failure::make(boom())));
  set_unhandled_error_handler(previous);
}

TEST_CASE("a failure handed to a consumer counts as handled") {
  error_log errors;
  bool got = false;
  fail<int>(failure::make(boom())).consume([&](outcome<int>&& o) { got = !o.has_value(); });
  CHECK(got);
  CHECK(errors.messages.empty());
}

TEST_CASE("a consumer's exception propagates to the call that ran the chain") {
  error_log errors;
  CHECK_THROWS_WITH(succeed(1).consume([](outcome<int>&&) { throw std::runtime_error("consumer broke"); }),
                    "consumer broke");
  deferred<int> d;
  d.consume([](outcome<int>&&) { throw std::runtime_error("consumer broke"); });
  CHECK_THROWS_WITH(d.callback(1), "consumer broke");
  CHECK(d.called());
  CHECK_FALSE(d.chain_running());
  CHECK(errors.messages.empty());
}
