// Process metrics in Prometheus text format: counters and a gauge keyed by
// name and label text. Thread-safe; cheap enough for the request path.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace tollgate {

class Metrics {
 public:
  void add(const std::string& name, const std::string& labels, int64_t delta = 1);
  void set(const std::string& name, const std::string& labels, int64_t value);
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, int64_t>> counters_;
  std::map<std::string, std::map<std::string, int64_t>> gauges_;
};

}  // namespace tollgate
