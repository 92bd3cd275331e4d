// The ratio table every benchmark program ends with: twistlet against its closest peer, both
// measured in the same run. Rows also go, tab-separated, to the file named by the environment
// variable TWISTLET_BENCH_RATIOS (appended), from which scripts/perf_report.sh writes
// docs/performance.md.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace twistlet_bench {

/// Console output as usual, plus the CPU time per iteration of every benchmark by name (CPU
/// time, so that other load on a shared machine skews ratios less).
class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.iterations <= 0) continue;
      ns_[r.run_name.function_name] = r.cpu_accumulated_time * 1e9 / static_cast<double>(r.iterations);
      for (const auto& [name, counter] : r.counters) counters_[r.run_name.function_name][name] = counter.value;
    }
  }
  /// CPU nanoseconds per iteration of `benchmark`, or a negative number if it did not run.
  double ns(const std::string& benchmark) const {
    auto it = ns_.find(benchmark);
    return it == ns_.end() ? -1.0 : it->second;
  }
  /// A counter a benchmark reported, or a negative number.
  double counter(const std::string& benchmark, const std::string& name) const {
    auto it = counters_.find(benchmark);
    if (it == counters_.end()) return -1.0;
    auto c = it->second.find(name);
    return c == it->second.end() ? -1.0 : c->second;
  }

 private:
  std::map<std::string, double> ns_;
  std::map<std::string, std::map<std::string, double>> counters_;
};

/// Rows of "twistlet / peer" ratios with their targets.
class ratio_table {
 public:
  explicit ratio_table(std::string program) : program_(std::move(program)) {}

  /// `ratio` is twistlet's figure over the peer's. `better` says which way is good: "lower"
  /// (times, memory) or "higher" (throughput).
  void add(std::string label, double ratio, std::string target, std::string better = "lower",
           std::string peer = "") {
    rows_.push_back({std::move(label), ratio, std::move(target), std::move(better), std::move(peer)});
  }
  /// Adds the ratio of two benchmarks' CPU times; skipped if either did not run.
  void add_times(const ratio_reporter& r, const std::string& ours, const std::string& peer, std::string label,
                 std::string target) {
    const double a = r.ns(ours), b = r.ns(peer);
    if (a <= 0 || b <= 0) return;
    add(std::move(label), a / b, std::move(target), "lower", peer);
  }

  /// Prints the table and appends it to $TWISTLET_BENCH_RATIOS if set.
  void print() const {
    std::printf("\n%s: twistlet / peer, measured in this run\n", program_.c_str());
    for (const auto& row : rows_)
      std::printf("  %-58s %9.3fx  (%s is better; target %s)\n", row.label.c_str(), row.ratio, row.better.c_str(),
                  row.target.c_str());
    if (const char* path = std::getenv("TWISTLET_BENCH_RATIOS")) {
      std::ofstream out(path, std::ios::app);
      for (const auto& row : rows_)
        out << program_ << '\t' << row.label << '\t' << row.ratio << '\t' << row.target << '\t' << row.better << '\t'
            << row.peer << '\n';
    }
  }

 private:
  struct row {
    std::string label;
    double ratio;
    std::string target;
    std::string better;
    std::string peer;
  };
  std::string program_;
  std::vector<row> rows_;
};

}  // namespace twistlet_bench
