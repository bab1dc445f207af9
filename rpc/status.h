// absl::Status <-> grpc::Status: what a handler returns and what a caller
// makes of the answer. The codes a caller acts on (UNAVAILABLE: try again;
// UNAUTHENTICATED, PERMISSION_DENIED, ALREADY_EXISTS, INVALID_ARGUMENT:
// give up) survive the round trip. Stateless; safe from any thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"

namespace tierflow::rpc {

// A handler's answer; codes without a counterpart here become INTERNAL.
grpc::Status ToGrpc(const absl::Status& status);

// A call's answer, its message prefixed with "scheduler HOST:PORT: ".
absl::Status FromGrpc(const grpc::Status& status, const std::string& scheduler);

}  // namespace tierflow::rpc
