#include "storage_adapters/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cassert>
#include <ctime>

#include "common/strings.h"

namespace tierflow::storage {
namespace {

std::string LowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Trimmed, with each run of spaces inside made one, as the canonical
// headers want.
std::string CanonicalHeaderValue(std::string_view value) {
  value = TrimWhitespace(value);
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string UriEncode(std::string_view text, bool keep_slash) {
  return PercentEncode(text, keep_slash);
}

std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) {
    encoded.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out.push_back('&');
    out += StrCat(name, "=", value);
  }
  return out;
}

Digest::Digest(Kind kind) : context_(EVP_MD_CTX_new()) {
  const int ok =
      EVP_DigestInit_ex(context_, kind == Kind::kSha256 ? EVP_sha256() : EVP_md5(), nullptr);
  assert(ok == 1);
  (void)ok;
}

Digest::~Digest() { EVP_MD_CTX_free(context_); }

void Digest::Update(std::string_view data) { EVP_DigestUpdate(context_, data.data(), data.size()); }

std::string Digest::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(context_, out, &size);
  return std::string(reinterpret_cast<const char*>(out), size);
}

std::string Sha256Hex(std::string_view data) {
  Digest digest(Digest::Kind::kSha256);
  digest.Update(data);
  return HexEncode(digest.Finish());
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &size);
  return std::string(reinterpret_cast<const char*>(out), size);
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 15]);
  }
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

SigV4Signature SignV4(const SigV4Request& request, const SigV4Credentials& credentials,
                      std::chrono::system_clock::time_point time) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[17];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
  const std::string amz_date = stamp;
  const std::string date = amz_date.substr(0, 8);

  // Canonical headers: lower-case names, sorted; values of a repeated name
  // joined by commas.
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [name, value] : request.headers) {
    std::string lower = LowerAscii(TrimWhitespace(name));
    if (lower == "x-amz-date") continue;  // the signer's own, below
    headers.emplace_back(std::move(lower), CanonicalHeaderValue(value));
  }
  headers.emplace_back("x-amz-date", amz_date);
  std::stable_sort(headers.begin(), headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string canonical_headers;
  std::string signed_headers;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (i > 0 && headers[i].first == headers[i - 1].first) {
      canonical_headers.back() = ',';
      canonical_headers += StrCat(headers[i].second, "\n");
      continue;
    }
    canonical_headers += StrCat(headers[i].first, ":", headers[i].second, "\n");
    if (!signed_headers.empty()) signed_headers.push_back(';');
    signed_headers += headers[i].first;
  }

  const std::string canonical_request =
      StrCat(request.method, "\n", UriEncodePath(request.path.empty() ? "/" : request.path), "\n",
             CanonicalQuery(request.query), "\n", canonical_headers, "\n", signed_headers, "\n",
             request.payload_sha256);
  const std::string scope =
      StrCat(date, "/", credentials.region, "/", credentials.service, "/aws4_request");
  const std::string string_to_sign =
      StrCat("AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n", Sha256Hex(canonical_request));

  std::string key = HmacSha256(StrCat("AWS4", credentials.secret_key), date);
  key = HmacSha256(key, credentials.region);
  key = HmacSha256(key, credentials.service);
  key = HmacSha256(key, "aws4_request");
  const std::string signature = HexEncode(HmacSha256(key, string_to_sign));

  return {StrCat("AWS4-HMAC-SHA256 Credential=", credentials.access_key, "/", scope,
                 ",SignedHeaders=", signed_headers, ",Signature=", signature),
          amz_date};
}

}  // namespace tierflow::storage
