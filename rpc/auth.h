// The server end of the bearer tokens (api/cluster.h ServerOptions): a call
// is let in when the server needs no token or the call carries the right
// one. Stateless; safe from any thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>
#include <string_view>

namespace tierflow::rpc {

// OK when `token` is empty (none required) or the call's `authorization`
// metadata is "Bearer TOKEN" (scheme case-insensitive, compared in constant
// time); UNAUTHENTICATED when it is missing or malformed, PERMISSION_DENIED
// when it is wrong. `who` ("client", "worker") names the token in messages.
grpc::Status CheckToken(const grpc::ServerContext& context, const std::string& token,
                        std::string_view who);

}  // namespace tierflow::rpc
