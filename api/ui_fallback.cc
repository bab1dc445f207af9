// ui/assets.h when the build has no web UI (no tierflow_ui_assets target):
// the API and /metrics work, and / says why there is no UI.
#include "ui/assets.h"

namespace tierflow::ui {

const Asset* FindAsset(std::string_view path) {
  static const Asset kIndex{
      "/index.html", "text/html; charset=utf-8",
      "<!doctype html><html><head><meta charset=\"utf-8\"><title>tierflow</title></head>"
      "<body><p>This tierflow was built without its web UI (ui/ needs npm: run "
      "scripts/bootstrap.sh, then build again). The JSON API is at /api/v1 and the metrics at "
      "/metrics.</p></body></html>\n"};
  return path == "/" || path == "/index.html" ? &kIndex : nullptr;
}

}  // namespace tierflow::ui
