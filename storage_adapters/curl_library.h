// libcurl, loaded when the first S3 tier is opened (dlopen), not when
// tierflow starts: libcurl needs some 30 more shared libraries (TLS, LDAP,
// SSH, HTTP/2, ...), and loading them cost every tierflow command ~3 ms of
// CPU and ~4 ms of wall time, S3 or not (bench/README.md "overhead").
// curl/curl.h is only used for its types and constants.
#pragma once

#include <curl/curl.h>

#include "absl/status/statusor.h"

namespace tierflow::storage {

struct CurlLibrary {
  CURLcode (*global_init)(long flags);
  CURL* (*easy_init)();
  void (*easy_cleanup)(CURL* handle);
  void (*easy_reset)(CURL* handle);
  CURLcode (*easy_setopt)(CURL* handle, CURLoption option, ...);
  CURLcode (*easy_perform)(CURL* handle);
  const char* (*easy_strerror)(CURLcode code);
  curl_slist* (*slist_append)(curl_slist* list, const char* string);
  void (*slist_free_all)(curl_slist* list);
};

// libcurl.so.4, loaded and initialised (curl_global_init) once; an error
// naming the library and the package when it cannot be.
absl::StatusOr<const CurlLibrary*> LoadCurl();

}  // namespace tierflow::storage
