// Structured logs: one JSON object per line on stderr, {"ts","level",...}.
// Every field is escaped, so messages that carry user input or error text
// stay valid JSON. The upstream key is never passed here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tollgate::log {

enum class Level { kDebug, kInfo, kWarn, kError, kCritical };

// Installs the JSON line format; level from TOLLGATE_LOG_LEVEL (default info).
void init();

class Event {
 public:
  explicit Event(std::string_view name);
  Event& str(std::string_view key, std::string_view value);
  Event& num(std::string_view key, int64_t value);
  void emit(Level level) const;

 private:
  std::string members_;  // `"k":v` pairs, comma separated
};

// {"msg": message}
void text(Level level, std::string_view message);

bool enabled(Level level);

}  // namespace tollgate::log
