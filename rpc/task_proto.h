// common/task.h values to and from their tierflow.proto messages, one
// field for one field. kLost is the scheduler's own verdict and travels as
// FAILED. Pure functions; safe from any thread.
#pragma once

#include <map>
#include <string>

#include "common/task.h"
#include "rpc/tierflow.pb.h"

namespace tierflow::rpc {

void ToProto(const TaskLaunch& launch, v1::TaskLaunch* out);
TaskLaunch FromProto(const v1::TaskLaunch& launch);
void ToProto(const TaskReport& report, v1::TaskReport* out);
TaskReport FromProto(const v1::TaskReport& report);
// A worker's node tiers (name -> path), as Register and WorkerInfo carry them.
void ToProto(const std::map<std::string, std::string>& tiers,
             google::protobuf::RepeatedPtrField<v1::NodeTier>* out);
std::map<std::string, std::string> FromProto(
    const google::protobuf::RepeatedPtrField<v1::NodeTier>& tiers);

}  // namespace tierflow::rpc
