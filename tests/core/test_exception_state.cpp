// The C++ runtime keeps the exceptions being handled, and the count of exceptions in flight,
// per thread. The scheduler saves and restores that state per tasklet: these tests switch
// tasklets inside catch blocks and inside destructors that run during unwinding.
#include "core/core_test_support.hpp"

using namespace twistlet;
using namespace twistlet_test;

TEST_CASE("a rethrow in a catch block that switched tasklets midway rethrows its own exception",
          "[core][eh]") {
  reaper r;
  event_log log;
  auto rethrown = [] {
    try {
      throw;
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  };
  r.spawn([&] {
    try {
      throw std::runtime_error("A");
    } catch (...) {
      schedule();  // B enters its own catch block and switches back from inside it
      log.push_back("A sees " + what_of(std::current_exception()));
      log.push_back("A rethrows " + rethrown());
      schedule();
      log.push_back("A sees " + what_of(std::current_exception()));
    }
    log.push_back(std::string("A after: ") + (std::current_exception() ? "exception" : "none"));
  });
  r.spawn([&] {
    try {
      throw std::logic_error("B");
    } catch (...) {
      schedule();
      log.push_back("B sees " + what_of(std::current_exception()));
      log.push_back("B rethrows " + rethrown());
      schedule();
    }
  });
  run();
  CHECK(log == event_log{"A sees A", "A rethrows A", "B sees B", "B rethrows B", "A sees A", "A after: none"});
  CHECK_FALSE(std::current_exception());
}

TEST_CASE("an exception thrown and caught in another tasklet does not disturb a catch block in progress",
          "[core][eh]") {
  reaper r;
  std::string main_sees;
  r.spawn([] {
    try {
      throw test_error(1);
    } catch (const test_error&) {
    }
    try {
      throw test_error(2);
    } catch (const test_error&) {
      schedule();  // switch out with this exception caught
    }
  });
  try {
    throw test_error(3);
  } catch (const test_error&) {
    schedule();  // the tasklet runs, catches two of its own, switches back from inside a catch
    main_sees = what_of(std::current_exception());
    schedule();  // let it leave its catch block
  }
  CHECK(main_sees == "test_error 3");
  CHECK_FALSE(std::current_exception());
  run();
}

TEST_CASE("std::uncaught_exceptions() is per tasklet", "[core][eh]") {
  reaper r;
  std::vector<int> seen;
  struct yields_while_unwinding {
    std::vector<int>* seen;
    ~yields_while_unwinding() {
      seen->push_back(std::uncaught_exceptions());
      schedule();
      seen->push_back(std::uncaught_exceptions());
    }
  };
  r.spawn([&] {
    try {
      yields_while_unwinding y{&seen};
      throw test_error(1);
    } catch (const test_error&) {
      seen.push_back(100 + std::uncaught_exceptions());
    }
  });
  r.spawn([&] { seen.push_back(std::uncaught_exceptions()); });
  run();
  CHECK(seen == std::vector<int>{1, 0, 1, 100});
  CHECK(std::uncaught_exceptions() == 0);
}

TEST_CASE("a tasklet switched out while unwinding can be killed and still unwinds cleanly", "[core][eh]") {
  reaper r;
  event_log log;
  channel<int> ch;
  struct waits_while_unwinding {
    channel<int>* ch;
    event_log* log;
    ~waits_while_unwinding() {
      try {
        ch->receive();
      } catch (const tasklet_exit&) {
        log->push_back("killed in destructor, uncaught " + std::to_string(std::uncaught_exceptions()));
      }
    }
  };
  tasklet t = r.spawn([&] {
    try {
      waits_while_unwinding w{&ch, &log};
      throw test_error(1);
    } catch (const test_error& e) {
      log.push_back("caught " + std::to_string(e.value));
    }
  });
  run();
  REQUIRE(t.blocked());
  CHECK(std::uncaught_exceptions() == 0);
  t.kill();
  CHECK(log == event_log{"killed in destructor, uncaught 1", "caught 1"});
  CHECK_FALSE(t.alive());
}
