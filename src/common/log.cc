#include "common/log.h"

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <cstdlib>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace tollgate::log {

namespace {

spdlog::level::level_enum to_spdlog(Level l) {
  switch (l) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
    case Level::kCritical: return spdlog::level::critical;
  }
  return spdlog::level::info;
}

std::string quoted(std::string_view s) { return boost::json::serialize(boost::json::string(s)); }

}  // namespace

void init() {
  auto logger = spdlog::stderr_logger_mt("tollgate");
  logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})", spdlog::pattern_time_type::utc);
  spdlog::set_default_logger(logger);
  if (const char* lvl = std::getenv("TOLLGATE_LOG_LEVEL")) spdlog::set_level(spdlog::level::from_str(lvl));
}

bool enabled(Level level) { return spdlog::default_logger_raw()->should_log(to_spdlog(level)); }

Event::Event(std::string_view name) { members_ = "\"event\":" + quoted(name); }

Event& Event::str(std::string_view key, std::string_view value) {
  members_ += "," + quoted(key) + ":" + quoted(value);
  return *this;
}

Event& Event::num(std::string_view key, int64_t value) {
  members_ += "," + quoted(key) + ":" + std::to_string(value);
  return *this;
}

void Event::emit(Level level) const { spdlog::log(to_spdlog(level), "{}", members_); }

void text(Level level, std::string_view message) { spdlog::log(to_spdlog(level), "\"msg\":{}", quoted(message)); }

}  // namespace tollgate::log
