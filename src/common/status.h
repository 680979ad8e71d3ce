// Status / Result<T>: operating errors as values. No exception crosses a
// module boundary; programmer errors are assertions instead.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace tollgate {

enum class StatusCode {
  kOk,
  kInvalidArgument,   // caller's input is wrong (400)
  kNotFound,          // 404
  kConflict,          // 409 (idempotency key reused with another body)
  kUnavailable,       // store or upstream unreachable, retryable (503)
  kInternal,          // unexpected failure
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status Conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  T& operator*() & { return std::get<T>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tollgate

// Returns the Status of `expr` from the enclosing function if it is not ok.
#define TG_TRY(expr)                       \
  do {                                     \
    ::tollgate::Status tg_status_ = (expr); \
    if (!tg_status_.ok()) return tg_status_; \
  } while (0)

#define TG_CONCAT_INNER(a, b) a##b
#define TG_CONCAT(a, b) TG_CONCAT_INNER(a, b)
// `TG_ASSIGN(auto x, f())`: declares x from f()'s value, or returns its Status.
#define TG_ASSIGN(decl, expr) TG_ASSIGN_IMPL(TG_CONCAT(tg_result_, __LINE__), decl, expr)
#define TG_ASSIGN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                    \
  if (!tmp.ok()) return tmp.status();   \
  decl = std::move(tmp.value())
