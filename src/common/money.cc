#include "common/money.h"

#include <fmt/format.h>

namespace tollgate {

std::optional<Microdollars> Microdollars::checked_add(Microdollars a, Microdollars b) {
  int64_t r;
  if (__builtin_add_overflow(a.v_, b.v_, &r)) return std::nullopt;
  return Microdollars(r);
}

std::optional<Microdollars> Microdollars::checked_sub(Microdollars a, Microdollars b) {
  int64_t r;
  if (__builtin_sub_overflow(a.v_, b.v_, &r)) return std::nullopt;
  return Microdollars(r);
}

std::string format_dollars_cents(Microdollars m) {
  // Work in cents with integer arithmetic; ties (5,000 µ$ past a cent) round up.
  int64_t v = m.value();
  int64_t cents = v / 10'000;
  int64_t rem = v % 10'000;  // same sign as v
  if (rem >= 5'000) cents += 1;
  else if (rem < -5'000) cents -= 1;  // -x.xx5 rounds up (toward zero) on a tie
  bool neg = cents < 0;
  uint64_t a = neg ? static_cast<uint64_t>(-(cents + 1)) + 1 : static_cast<uint64_t>(cents);
  return fmt::format("{}${}.{:02}", neg ? "-" : "", a / 100, a % 100);
}

}  // namespace tollgate
