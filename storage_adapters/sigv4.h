// AWS Signature Version 4 for S3 requests, as a pure function of the
// request, the credentials and the time (no clock, no network), so it can be
// checked against the signatures AWS publishes. Also the digests the s3
// adapter needs (SHA-256, MD5 over OpenSSL EVP) and the URI encoding AWS
// defines. Thread-safe: nothing here keeps state between calls.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace tierflow::storage {

struct SigV4Request {
  std::string method;  // "GET", "PUT", ...
  // The path as the server sees it, not yet encoded: "/bucket/run/a b.txt".
  // Signed in its encoded form (UriEncodePath), which the URL must use too.
  std::string path;
  // Query parameters, not yet encoded; a parameter without a value ("uploads")
  // has an empty one.
  std::vector<std::pair<std::string, std::string>> query;
  // Every header to sign, Host included (as sent: "127.0.0.1:8080"), and
  // x-amz-content-sha256. x-amz-date is added by the signer.
  std::vector<std::pair<std::string, std::string>> headers;
  // Hex SHA-256 of the body (also sent as x-amz-content-sha256), or
  // "UNSIGNED-PAYLOAD".
  std::string payload_sha256;
};

struct SigV4Credentials {
  std::string access_key;
  std::string secret_key;
  std::string region = "us-east-1";
  std::string service = "s3";
};

struct SigV4Signature {
  std::string authorization;  // the Authorization header's value
  std::string amz_date;       // the x-amz-date header's value, e.g. 20130524T000000Z
};

SigV4Signature SignV4(const SigV4Request& request, const SigV4Credentials& credentials,
                      std::chrono::system_clock::time_point time);

// AWS's UriEncode: every byte but A-Z a-z 0-9 - . _ ~ as %XY (upper-case
// hex); '/' too unless `keep_slash`.
std::string UriEncode(std::string_view text, bool keep_slash);
// A path for a URL and for signing: each segment encoded once, '/' kept.
inline std::string UriEncodePath(std::string_view path) { return UriEncode(path, true); }
// "a=1&b=2": names and values encoded, sorted by name then value; the query
// string of the URL and of the canonical request.
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query);

// A digest computed over pieces (SHA-256 or MD5, OpenSSL EVP).
class Digest {
 public:
  enum class Kind { kSha256, kMd5 };
  explicit Digest(Kind kind);
  ~Digest();
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;

  void Update(std::string_view data);
  // The raw digest; the object is spent afterwards.
  std::string Finish();

 private:
  evp_md_ctx_st* context_;
};

std::string Sha256Hex(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);  // raw bytes
std::string HexEncode(std::string_view bytes);                        // lower-case
std::string Base64Encode(std::string_view bytes);

}  // namespace tierflow::storage
