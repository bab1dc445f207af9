// The web UI's built files (ui/dist, made by `npm run build` in ui/), compiled
// into the `tierflow` binary by the tierflow_ui_assets target so one binary
// serves the UI. cli hands them to the HTTP server (api/http_server.h
// HttpServerOptions::ui_assets), which serves them at / and under /assets/.
#pragma once

#include <span>
#include <string_view>

namespace tierflow::ui {

struct Asset {
  std::string_view path;          // "/index.html", "/assets/app.js", ...
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view body;
};

// Every built file, in static storage (the views never dangle).
std::span<const Asset> Assets();

}  // namespace tierflow::ui
