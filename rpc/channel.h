// The client end of a connection to `tierflow server`: the channel every
// client call and every worker opens, and the token each call carries.
// Stateless functions; safe from any thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace tierflow::rpc {

// A channel to `scheduler` (HOST:PORT): TLS when TIERFLOW_TLS_CA names the
// PEM file of the CA that signed the server's certificate, plaintext
// otherwise. An unreadable CA file fails the calls with a message naming
// it (through a channel that cannot connect).
std::shared_ptr<grpc::Channel> OpenChannel(const std::string& scheduler);

// Adds `authorization: Bearer TOKEN` to the call; nothing when `token` is "".
void Authorize(grpc::ClientContext& context, const std::string& token);

}  // namespace tierflow::rpc
