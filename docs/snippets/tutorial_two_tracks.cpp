// Two tracks: a throw moves the chain to the errbacks, an errback that returns moves it back.
#include <twistlet/deferred.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>

using namespace twistlet;

auto parse_number = [](const std::string& s) {
  std::printf("  parse '%s'\n", s.c_str());
  std::size_t used = 0;
  int n = std::stoi(s, &used);  // throws std::invalid_argument for "x"
  if (used != s.size()) throw std::domain_error("trailing garbage");
  return n;
};
auto double_it = [](int n) {
  std::printf("  double it\n");  // skipped while the chain is on the error track
  return n * 2;
};
auto default_to_zero = [](const failure& f) {
  f.trap<std::invalid_argument>();  // rethrows anything else: the chain stays failed
  std::printf("  not a number: use 0\n");
  return 0;  // back on the callback track
};

int parse(const std::string& text) {
  int result = -1;
  deferred<std::string> d;
  d.add_callback(parse_number)
      .add_callback(double_it)
      .add_errback(default_to_zero)
      .add_callbacks([&](int n) { result = n; },
                     [](const failure& f) { std::printf("  gave up: %s\n", f.what().c_str()); });
  d.callback(text);
  return result;
}

int main() {
  std::printf("-> %d\n", parse("21"));
  std::printf("-> %d\n", parse("x"));
  std::printf("-> %d\n", parse("7up"));
}
