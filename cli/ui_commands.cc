#include "cli/ui_commands.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <ostream>
#include <thread>

#include "api/embedded.h"
#include "api/http_server.h"
#include "api/lineage_sender.h"
#include "cli/commands.h"
#include "cli/web_ui.h"

namespace tierflow::cli {
namespace {

std::atomic<bool> stop_requested{false};

void OnStopSignal(int) { stop_requested = true; }

std::string Token() {
  for (const char* name : {"TIERFLOW_UI_TOKEN", "TIERFLOW_CLIENT_TOKEN"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return value;
  }
  return "";
}

}  // namespace

int RunUi(const UiOptions& options, std::ostream& out, std::ostream& err) {
  api::HttpServerOptions server;
  server.listen = options.listen;
  server.db_path = api::DatabasePath(options.db);
  server.tiers_file = options.tiers_file;
  server.token = Token();
  server.ui_assets = WebUiAssets();
  // The store must be there and readable now, not at the first request.
  if (absl::Status readable = api::CheckStoreReadable(server.db_path); !readable.ok()) {
    err << "tierflow: " << readable.message() << '\n';
    return kExitInvalid;
  }
  // The store's OpenLineage sender, for as long as the UI serves.
  absl::StatusOr<std::unique_ptr<api::LineageSender>> lineage =
      api::StartLineageDelivery(server.db_path, nullptr);
  if (!lineage.ok()) {
    err << "tierflow: " << lineage.status().message() << '\n';
    return kExitUsage;
  }
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGPIPE, SIG_IGN);  // a browser that goes away mid-answer
  absl::StatusOr<std::unique_ptr<api::HttpServer>> started = api::StartHttpServer(server);
  if (!started.ok()) {
    err << "tierflow: " << started.status().message() << '\n';
    return kExitInvalid;
  }
  out << "serving the UI on http://" << (*started)->address() << "/" << std::endl;
  while (!stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*started)->Stop();
  return kExitOk;
}

}  // namespace tierflow::cli
