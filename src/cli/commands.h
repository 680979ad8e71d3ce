// The sub-commands of the tollgate binary. Each returns the process exit code.
#pragma once

#include <string>

#include "config/config.h"

namespace tollgate::cli {

int serve(const ConfigOverrides& overrides);
int migrate(const ConfigOverrides& overrides);
int fake_exa(const std::string& listen);

struct ReportOptions {
  std::string month;
  std::string format = "table";  // table | csv | json
};
// Exit 0: no drift; 1: drift; 2: error.
int recompute(const ConfigOverrides& overrides, const std::string& owner, bool fix);
int report(const ConfigOverrides& overrides, const ReportOptions& options);

}  // namespace tollgate::cli
