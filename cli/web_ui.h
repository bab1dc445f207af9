// The web UI's files as the HTTP server takes them (api/http_server.h
// HttpServerOptions::ui_assets): cli is where ui/ and api/ meet. Empty in a
// build without the UI (no npm), where the server says so at /.
#pragma once

#include <vector>

#include "api/http_server.h"

namespace tierflow::cli {

std::vector<api::WebAsset> WebUiAssets();

}  // namespace tierflow::cli
