// WebUiAssets (cli/web_ui.h) when the build has the web UI: ui/'s compiled-in
// files (the tierflow_ui_assets target), viewed, not copied.
#include "cli/web_ui.h"

#include "ui/assets.h"

namespace tierflow::cli {

std::vector<api::WebAsset> WebUiAssets() {
  std::vector<api::WebAsset> assets;
  for (const ui::Asset& asset : ui::Assets()) {
    assets.push_back({asset.path, asset.content_type, asset.body});
  }
  return assets;
}

}  // namespace tierflow::cli
