// failure and outcome.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include <twistlet/failure.hpp>

using namespace twistlet;

namespace {
struct custom_error {
  int code;
};
struct derived_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace

TEST_CASE("failure needs a non-null exception") {
  CHECK_THROWS_AS(failure(std::exception_ptr()), std::invalid_argument);
}

TEST_CASE("failure keeps the original exception object") {
  failure f = failure::make(custom_error{42});
  REQUIRE(f.get<custom_error>() != nullptr);
  CHECK(f.get<custom_error>()->code == 42);
  try {
    f.raise();
    FAIL("raise() returned");
  } catch (const custom_error& e) {
    CHECK(&e == f.get<custom_error>());
  }
}

TEST_CASE("failure::check matches the type and its bases") {
  failure f = failure::make(derived_error("boom"));
  CHECK(f.check<derived_error>());
  CHECK(f.check<std::runtime_error>());
  CHECK(f.check<std::exception>());
  CHECK_FALSE(f.check<std::logic_error>());
  CHECK(f.get<std::logic_error>() == nullptr);
}

TEST_CASE("failure::trap returns for a listed type and rethrows the original otherwise") {
  failure f = failure::make(derived_error("boom"));
  CHECK_NOTHROW(f.trap<std::logic_error, std::runtime_error>());
  CHECK_THROWS_AS(f.trap<std::logic_error>(), derived_error);
}

TEST_CASE("failure::what gives std::exception::what or a type description") {
  CHECK(failure::make(std::runtime_error("boom")).what() == "boom");
  CHECK(failure::make(custom_error{1}).what().find("custom_error") != std::string::npos);
  CHECK(failure::make(42).what() == "exception of type int");
  CHECK(failure::make(tasklet_exit{}).what().find("tasklet_exit") != std::string::npos);
}

TEST_CASE("failure::current captures the exception being handled") {
  try {
    throw derived_error("x");
  } catch (...) {
    CHECK(failure::current().check<derived_error>());
  }
}

TEST_CASE("failures compare equal when they share the exception") {
  failure a = failure::make(1);
  failure b = a;
  CHECK(a == b);
  CHECK_FALSE(a == failure::make(1));
}

TEST_CASE("outcome holds a value or a failure") {
  outcome<int> v = 5;
  CHECK(v.has_value());
  CHECK(v.value() == 5);
  CHECK_THROWS_AS(v.error(), std::logic_error);

  outcome<int> e = failure::make(derived_error("bad"));
  CHECK_FALSE(e.has_value());
  CHECK_THROWS_AS(e.value(), derived_error);
  CHECK(e.error().check<derived_error>());
}

TEST_CASE("outcome<void> is a success or a failure") {
  outcome<void> ok;
  CHECK(ok.has_value());
  CHECK_NOTHROW(ok.value());
  CHECK_THROWS_AS(ok.error(), std::logic_error);

  outcome<void> bad = failure::make(derived_error("bad"));
  CHECK_FALSE(bad.has_value());
  CHECK_THROWS_AS(bad.value(), derived_error);
}

TEST_CASE("outcome moves its value out") {
  outcome<std::string> o(std::string(100, 'x'));
  std::string s = std::move(o).value();
  CHECK(s.size() == 100);
}
