// WebUiAssets (cli/web_ui.h) when the build has no web UI (no
// tierflow_ui_assets target: npm was not found): no files, so the HTTP
// server serves its page saying how to build the UI.
#include "cli/web_ui.h"

namespace tierflow::cli {

std::vector<api::WebAsset> WebUiAssets() { return {}; }

}  // namespace tierflow::cli
