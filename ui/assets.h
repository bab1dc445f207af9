// The web UI's built files (ui/dist, made by `npm run build` in ui/), compiled
// into the `tierflow` binary by the tierflow_ui_assets target so one binary
// serves the UI. The HTTP server (api/) serves them at / and under /assets/.
#pragma once

#include <string_view>

namespace tierflow::ui {

struct Asset {
  std::string_view path;          // "/index.html", "/assets/app.js", ...
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view body;
};

// The asset at `path` ("/" is "/index.html"); nullptr when there is none.
const Asset* FindAsset(std::string_view path);

}  // namespace tierflow::ui
