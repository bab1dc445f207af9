// PLACEHOLDER (replaced by the renderer's real implementation): the UUIDs
// are real; RenderEvent writes only the event's skeleton.
#include "scheduler/lineage_events.h"

#include <openssl/sha.h>

#include <array>
#include <cstdio>

#include "nlohmann/json.hpp"

namespace tierflow::scheduler::lineage {
namespace {

// tierflow's UUID namespace (a random v4 UUID, fixed for ever).
constexpr std::array<unsigned char, 16> kNamespace = {0x6b, 0x3e, 0x1f, 0x52, 0x9a, 0x4d,
                                                      0x4c, 0x0e, 0x8f, 0x27, 0x31, 0xd5,
                                                      0xa2, 0x60, 0x7c, 0x19};

std::string UuidV5(std::string_view name) {
  std::string data(reinterpret_cast<const char*>(kNamespace.data()), kNamespace.size());
  data += name;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  digest[6] = static_cast<unsigned char>((digest[6] & 0x0f) | 0x50);  // version 5
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string text;
  char hex[3];
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text += '-';
    std::snprintf(hex, sizeof hex, "%02x", digest[i]);
    text += hex;
  }
  return text;
}

}  // namespace

std::string_view EventTypeWord(EventType type) {
  switch (type) {
    case EventType::kStart:
      return "START";
    case EventType::kRunning:
      return "RUNNING";
    case EventType::kComplete:
      return "COMPLETE";
    case EventType::kFail:
      return "FAIL";
    case EventType::kAbort:
      return "ABORT";
  }
  return "OTHER";
}

std::string RunUuid(std::string_view run_id) { return UuidV5(std::string("run:") += run_id); }

std::string AttemptUuid(std::string_view run_id, int64_t attempt_id) {
  return UuidV5((std::string("attempt:") += run_id) += ":" + std::to_string(attempt_id));
}

absl::StatusOr<std::string> RenderEvent(Database& /*db*/, const EventSubject& subject,
                                        const ExportSettings& settings) {
  nlohmann::json event = {
      {"eventType", EventTypeWord(subject.type)},
      {"eventTime", subject.event_ms},
      {"run",
       {{"runId", subject.attempt_id ? AttemptUuid(subject.run_id, *subject.attempt_id)
                                     : RunUuid(subject.run_id)}}},
      {"job", {{"namespace", settings.job_namespace}, {"name", subject.run_id}}},
  };
  return event.dump();
}

absl::StatusOr<std::vector<std::string>> RenderRunEvents(Database& /*db*/,
                                                         const std::string& /*run_id*/,
                                                         const ExportSettings& /*settings*/) {
  return std::vector<std::string>{};
}

}  // namespace tierflow::scheduler::lineage
