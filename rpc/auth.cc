#include "rpc/auth.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>

#include "common/strings.h"

namespace tierflow::rpc {

grpc::Status CheckToken(const grpc::ServerContext& context, const std::string& token,
                        std::string_view who) {
  if (token.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto found = metadata.find("authorization");
  if (found == metadata.end()) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            StrCat("this server requires a ", who, " token: none was sent")};
  }
  // "Bearer TOKEN": the scheme is case-insensitive (RFC 7235 section 2.1),
  // then one or more spaces; the token is compared in constant time.
  std::string_view got(found->second.data(), found->second.size());
  constexpr std::string_view kScheme = "bearer";
  const bool bearer = got.size() > kScheme.size() && got[kScheme.size()] == ' ' &&
                      std::equal(kScheme.begin(), kScheme.end(), got.begin(), [](char a, char b) {
                        return a == std::tolower(static_cast<unsigned char>(b));
                      });
  if (!bearer) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            StrCat("this server requires a ", who, " token: the authorization metadata is not ",
                   "'Bearer TOKEN'")};
  }
  got.remove_prefix(kScheme.size());
  while (!got.empty() && got.front() == ' ') got.remove_prefix(1);
  if (got.size() != token.size() || CRYPTO_memcmp(got.data(), token.data(), token.size()) != 0) {
    return {grpc::StatusCode::PERMISSION_DENIED, StrCat("wrong ", who, " token")};
  }
  return grpc::Status::OK;
}

}  // namespace tierflow::rpc
