// tollgate: a metering proxy for paid APIs (first upstream: Exa web search).
#include <CLI/CLI.hpp>

#include "common/log.h"

#include "cli/admin_cli.h"
#include "cli/commands.h"
#include "cli/partitions.h"

int main(int argc, char** argv) {
  using namespace tollgate;
  // Logs are JSON lines on stderr; level from TOLLGATE_LOG_LEVEL (default info).
  log::init();

  CLI::App app{"tollgate: a metering proxy for paid APIs, with free monthly allowances and prepaid credits"};
  app.require_subcommand(1);
  ConfigOverrides o;
  auto add_db = [&o](CLI::App* c) {
    c->add_option("--config", o.config_file, "TOML configuration file")->check(CLI::ExistingFile);
    c->add_option("--database", o.database_url, "database URL: sqlite:PATH or postgresql://... (env TOLLGATE_DATABASE_URL)");
  };

  auto* serve = app.add_subcommand("serve", "run the proxy and the admin API");
  add_db(serve);
  serve->add_option("--listen", o.listen, "proxy listen address (default 127.0.0.1:8080)");
  serve->add_option("--admin-listen", o.admin_listen, "admin listen address (default 127.0.0.1:8081)");
  serve->add_option("--upstream-url", o.upstream_url, "upstream base URL (default https://api.exa.ai)");

  auto* migrate = app.add_subcommand("migrate", "create or upgrade the database schema");
  add_db(migrate);

  std::string fake_listen = "127.0.0.1:8090";
  auto* fake = app.add_subcommand("fake-exa", "simulated Exa upstream, for demos and tests");
  fake->add_option("--listen", fake_listen, "listen address (default 127.0.0.1:8090)");

  auto* admin = app.add_subcommand("admin", "the admin API from the shell (token from TOLLGATE_ADMIN_TOKEN)");
  auto run_admin = cli::add_admin_commands(*admin);

  std::string recompute_owner;
  auto* recompute = app.add_subcommand("recompute", "rebuild balances and counters from the records; report drift");
  add_db(recompute);
  recompute->add_option("--owner", recompute_owner, "only this owner: user:ID or org:ID");
  bool recompute_fix = false;
  recompute->add_flag("--fix", recompute_fix,
                      "write each drift as an adjustment entry and correct the stored figure (needs write access: "
                      "with SQLite, stop the server or use POST /admin/v1/recompute {\"fix\":true})");

  int64_t months_ahead = -1;
  auto* partitions = app.add_subcommand("partitions", "the audit log's monthly partitions (PostgreSQL)");
  partitions->require_subcommand(1);
  auto* ensure = partitions->add_subcommand(
      "ensure", "create the partitions of the current month and the next N, and move rows waiting in the default one");
  add_db(ensure);
  ensure->add_option("--months-ahead", months_ahead, "months after the current one (default 3)")
      ->check(CLI::Range(0, 120));

  cli::ReportOptions ro;
  auto* report = app.add_subcommand("report", "usage per user and context for a month");
  add_db(report);
  report->add_option("--month", ro.month, "YYYY-MM")->required();
  report->add_option("--format", ro.format, "table, csv or json")->check(CLI::IsMember({"table", "csv", "json"}));

  CLI11_PARSE(app, argc, argv);
  if (serve->parsed()) return cli::serve(o);
  if (migrate->parsed()) return cli::migrate(o);
  if (fake->parsed()) return cli::fake_exa(fake_listen);
  if (admin->parsed()) return run_admin();
  if (report->parsed()) return cli::report(o, ro);
  if (ensure->parsed()) return cli::partitions_ensure(o, months_ahead);
  if (recompute->parsed()) return cli::recompute(o, recompute_owner, recompute_fix);
  return 2;
}
