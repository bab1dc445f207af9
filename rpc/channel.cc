#include "rpc/channel.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace tierflow::rpc {

std::shared_ptr<grpc::Channel> OpenChannel(const std::string& scheduler) {
  const char* ca_file = std::getenv("TIERFLOW_TLS_CA");
  if (ca_file == nullptr || *ca_file == '\0') {
    return grpc::CreateChannel(scheduler, grpc::InsecureChannelCredentials());
  }
  std::ifstream in(ca_file, std::ios::binary);
  std::stringstream ca;
  ca << in.rdbuf();
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca.str();
  return grpc::CreateChannel(scheduler, grpc::SslCredentials(tls));
}

void Authorize(grpc::ClientContext& context, const std::string& token) {
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
}

}  // namespace tierflow::rpc
