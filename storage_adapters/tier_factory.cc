#include "storage_adapters/tier_factory.h"

#include <cstdlib>
#include <utility>

#include "common/strings.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/s3.h"

namespace tierflow::storage {

absl::StatusOr<std::unique_ptr<Adapter>> OpenTier(const TierConfig& tier) {
  if (tier.adapter == "posix") return OpenPosixTier(tier);
  S3Config config;
  config.tier = tier.name;
  config.endpoint = tier.endpoint;
  config.bucket = tier.bucket;
  config.region = tier.region;
  config.prefix = tier.prefix;
  config.path_style = tier.path_style;
  config.write_once = tier.durability == Durability::kArchive;
  config.timing = tier.s3_timing;
  for (auto [variable, value] : {std::pair{&tier.access_key_env, &config.access_key},
                                 std::pair{&tier.secret_key_env, &config.secret_key}}) {
    const char* text = std::getenv(variable->c_str());
    if (text == nullptr || *text == '\0') {
      return absl::FailedPreconditionError(
          StrCat("tier ", tier.name, ": the environment variable ", *variable, " (named by its ",
                 variable == &tier.access_key_env ? "access" : "secret", "_key_env) is not set"));
    }
    *value = text;
  }
  return MakeS3Adapter(std::move(config));
}

}  // namespace tierflow::storage
