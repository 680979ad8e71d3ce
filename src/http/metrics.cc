#include "http/metrics.h"

#include <fmt/format.h>

namespace tollgate {

void Metrics::add(const std::string& name, const std::string& labels, int64_t delta) {
  std::lock_guard lk(mu_);
  counters_[name][labels] += delta;
}

void Metrics::set(const std::string& name, const std::string& labels, int64_t value) {
  std::lock_guard lk(mu_);
  gauges_[name][labels] = value;
}

std::string Metrics::render() const {
  std::lock_guard lk(mu_);
  std::string out;
  auto emit = [&out](const auto& family, const char* type) {
    for (const auto& [name, series] : family) {
      out += fmt::format("# TYPE {} {}\n", name, type);
      for (const auto& [labels, v] : series) {
        out += labels.empty() ? fmt::format("{} {}\n", name, v) : fmt::format("{}{{{}}} {}\n", name, labels, v);
      }
    }
  };
  emit(counters_, "counter");
  emit(gauges_, "gauge");
  return out;
}

}  // namespace tollgate
