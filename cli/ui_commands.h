// `tierflow ui`: the web UI, JSON API and metrics (api/http_server.h) of a
// state database, read-only, until SIGINT or SIGTERM. The token, needed to
// listen beyond loopback, comes from TIERFLOW_UI_TOKEN, else
// TIERFLOW_CLIENT_TOKEN (never the command line, where `ps` shows it).
#pragma once

#include <iosfwd>
#include <string>

namespace tierflow::cli {

struct UiOptions {
  std::string listen = "127.0.0.1:8080";
  std::string db;
  std::string tiers_file;
};
int RunUi(const UiOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
