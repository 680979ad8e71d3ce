// Wall-clock time as microseconds since the Unix epoch (UTC), UTC months, and
// RFC 3339 text. The product reads wall time only through Clock, whose system
// implementation uses std::chrono::system_clock (so libfaketime can move it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tollgate {

struct Timestamp {
  int64_t micros = 0;  // since 1970-01-01T00:00:00Z
  auto operator<=>(const Timestamp&) const = default;
};

inline Timestamp max_time(Timestamp a, Timestamp b) { return a < b ? b : a; }

// A UTC calendar month: [first day 00:00Z, first day of next month 00:00Z).
struct Month {
  int year = 1970;
  int month = 1;  // 1..12
  auto operator<=>(const Month&) const = default;
  std::string to_string() const;  // "YYYY-MM"
  Timestamp start() const;
  Month next() const;
  static std::optional<Month> parse(std::string_view text);  // "YYYY-MM"
};

Month month_of(Timestamp t);

// "2025-10-15T00:00:00.000Z" (milliseconds, UTC).
std::string format_rfc3339(Timestamp t);
// Accepts any RFC 3339 date-time with 'Z' or a numeric offset, fractions to any
// number of digits (truncated to microseconds).
std::optional<Timestamp> parse_rfc3339(std::string_view text);

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp now() const = 0;
};

class SystemClock final : public Clock {
 public:
  Timestamp now() const override;
};

// For unit tests: a clock that only moves when told.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Timestamp t) : t_(t) {}
  Timestamp now() const override { return t_; }
  void set(Timestamp t) { t_ = t; }

 private:
  Timestamp t_;
};

}  // namespace tollgate
