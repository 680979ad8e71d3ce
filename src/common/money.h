// Microdollars: the one money type. 1 USD = 1,000,000 µ$, held in an int64.
// No implicit conversions; arithmetic that can overflow goes through the
// checked helpers, which report overflow instead of wrapping.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tollgate {

class Microdollars {
 public:
  constexpr Microdollars() = default;
  constexpr explicit Microdollars(int64_t v) : v_(v) {}
  constexpr int64_t value() const { return v_; }
  constexpr auto operator<=>(const Microdollars&) const = default;

  // Overflow-checked; nullopt on overflow.
  static std::optional<Microdollars> checked_add(Microdollars a, Microdollars b);
  static std::optional<Microdollars> checked_sub(Microdollars a, Microdollars b);

  // Unchecked forms for amounts already bounded by validated inputs (costs are
  // capped at cost_microdollars_max, grants at kMaxAmount): these can't overflow.
  constexpr Microdollars operator+(Microdollars o) const { return Microdollars(v_ + o.v_); }
  constexpr Microdollars operator-(Microdollars o) const { return Microdollars(v_ - o.v_); }
  constexpr Microdollars& operator+=(Microdollars o) { v_ += o.v_; return *this; }
  constexpr Microdollars& operator-=(Microdollars o) { v_ -= o.v_; return *this; }

 private:
  int64_t v_ = 0;
};

constexpr Microdollars min(Microdollars a, Microdollars b) { return a < b ? a : b; }
constexpr Microdollars max(Microdollars a, Microdollars b) { return a < b ? b : a; }
constexpr Microdollars kZero{0};
// Largest amount accepted for one grant or external usage entry: $1e9.
// Keeps every sum the ledger forms far from int64 overflow.
constexpr Microdollars kMaxAmount{1'000'000'000'000'000};
// Largest total an owner may hold in grants, or owe: $1e12. Sums of balances,
// holds and debt stay far from int64 overflow.
constexpr Microdollars kMaxOwnerTotal{1'000'000'000'000'000'000};

// "$10.00": dollars rounded to the nearest cent, ties up (toward +inf).
std::string format_dollars_cents(Microdollars m);

}  // namespace tollgate
