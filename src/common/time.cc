#include "common/time.h"

#include <chrono>
#include <fmt/format.h>

namespace tollgate {
namespace {

constexpr int64_t kMicrosPerSecond = 1'000'000;
constexpr int64_t kSecondsPerDay = 86'400;

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

std::chrono::year_month_day ymd_of_days(int64_t days) {
  return std::chrono::year_month_day{std::chrono::sys_days{std::chrono::days{days}}};
}

int64_t days_of(int y, unsigned m, unsigned d) {
  return std::chrono::sys_days{std::chrono::year{y} / std::chrono::month{m} / std::chrono::day{d}}
      .time_since_epoch()
      .count();
}

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

}  // namespace

std::string Month::to_string() const { return fmt::format("{:04}-{:02}", year, month); }

Timestamp Month::start() const {
  return Timestamp{days_of(year, static_cast<unsigned>(month), 1) * kSecondsPerDay * kMicrosPerSecond};
}

Month Month::next() const { return month == 12 ? Month{year + 1, 1} : Month{year, month + 1}; }

std::optional<Month> Month::parse(std::string_view text) {
  int y, m;
  if (text.size() != 7 || text[4] != '-' || !digits(text, 0, 4, y) || !digits(text, 5, 2, m)) {
    return std::nullopt;
  }
  if (m < 1 || m > 12 || y < 1970 || y > 9999) return std::nullopt;
  return Month{y, m};
}

Month month_of(Timestamp t) {
  auto ymd = ymd_of_days(floor_div(t.micros, kSecondsPerDay * kMicrosPerSecond));
  return Month{static_cast<int>(ymd.year()), static_cast<int>(static_cast<unsigned>(ymd.month()))};
}

std::string format_rfc3339(Timestamp t) {
  int64_t secs = floor_div(t.micros, kMicrosPerSecond);
  int64_t micros = t.micros - secs * kMicrosPerSecond;
  int64_t days = floor_div(secs, kSecondsPerDay);
  int64_t sod = secs - days * kSecondsPerDay;
  auto ymd = ymd_of_days(days);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     sod / 3600, (sod / 60) % 60, sod % 60, micros / 1000);
}

std::optional<Timestamp> parse_rfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  int y, mo, d, h, mi, se;
  if (s.size() < 20 || s.size() > 64) return std::nullopt;
  if (!digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
      !digits(s, 17, 2, se)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60 || y < 1) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year{y} / std::chrono::month{static_cast<unsigned>(mo)} /
                                  std::chrono::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  if (se == 60) se = 59;  // leap second: clamp
  size_t pos = 19;
  int64_t frac_micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    int64_t scale = 100'000;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      frac_micros += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  int64_t offset_secs = 0;
  if (pos >= s.size()) return std::nullopt;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_secs = (oh * 3600 + om * 60) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  int64_t days = days_of(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t secs = days * kSecondsPerDay + h * 3600 + mi * 60 + se - offset_secs;
  Timestamp t{secs * kMicrosPerSecond + frac_micros};
  // Only instants that print back as RFC 3339 with a four-digit year.
  if (t < Timestamp{0} || month_of(t).year > 9999) return std::nullopt;
  return t;
}

Timestamp SystemClock::now() const {
  auto d = std::chrono::system_clock::now().time_since_epoch();
  return Timestamp{std::chrono::duration_cast<std::chrono::microseconds>(d).count()};
}

}  // namespace tollgate
