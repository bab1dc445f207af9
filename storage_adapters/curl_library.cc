#include "storage_adapters/curl_library.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "common/strings.h"

namespace tierflow::storage {
namespace {

template <typename F>
bool Bind(void* library, const char* name, F& slot, std::string& missing) {
  slot = reinterpret_cast<F>(dlsym(library, name));
  if (slot == nullptr && missing.empty()) missing = name;
  return slot != nullptr;
}

absl::StatusOr<const CurlLibrary*> Load() {
  static CurlLibrary curl;
  void* library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* why = dlerror();
    return absl::FailedPreconditionError(StrCat("S3 tiers need libcurl, which cannot be loaded (",
                                                why != nullptr ? why : "",
                                                "): install Debian's libcurl4"));
  }
  std::string missing;
  Bind(library, "curl_global_init", curl.global_init, missing);
  Bind(library, "curl_easy_init", curl.easy_init, missing);
  Bind(library, "curl_easy_cleanup", curl.easy_cleanup, missing);
  Bind(library, "curl_easy_reset", curl.easy_reset, missing);
  Bind(library, "curl_easy_setopt", curl.easy_setopt, missing);
  Bind(library, "curl_easy_perform", curl.easy_perform, missing);
  Bind(library, "curl_easy_strerror", curl.easy_strerror, missing);
  Bind(library, "curl_slist_append", curl.slist_append, missing);
  Bind(library, "curl_slist_free_all", curl.slist_free_all, missing);
  if (!missing.empty()) {
    return absl::FailedPreconditionError(
        StrCat("libcurl.so.4 has no ", missing, ": S3 tiers need libcurl 7.x or later"));
  }
  if (CURLcode code = curl.global_init(CURL_GLOBAL_DEFAULT); code != CURLE_OK) {
    return absl::FailedPreconditionError(
        StrCat("libcurl did not initialise: ", curl.easy_strerror(code)));
  }
  return &curl;  // never unloaded: its handles live as long as the adapters
}

}  // namespace

absl::StatusOr<const CurlLibrary*> LoadCurl() {
  static std::once_flag once;
  static absl::StatusOr<const CurlLibrary*> loaded = absl::UnknownError("not loaded");
  std::call_once(once, [] { loaded = Load(); });
  return loaded;
}

}  // namespace tierflow::storage
