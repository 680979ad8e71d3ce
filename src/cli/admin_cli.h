// `tollgate admin ...`: the admin API from the shell. Builds the request for
// each sub-command, sends it to --admin-url with $TOLLGATE_ADMIN_TOKEN, and
// prints the JSON answer (exit 0 on 2xx, 1 otherwise).
#pragma once

#include <CLI/CLI.hpp>

namespace tollgate::cli {

// Registers the admin sub-commands on `admin`; returns a function that runs
// whichever was chosen.
std::function<int()> add_admin_commands(CLI::App& admin);

}  // namespace tollgate::cli
