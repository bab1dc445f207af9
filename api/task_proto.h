// common/task.h values to and from their tierflow.proto messages.
#pragma once

#include <vector>

#include "api/cluster.h"
#include "api/tierflow.pb.h"
#include "common/task.h"

namespace tierflow::api {

void ToProto(const TaskLaunch& launch, v1::TaskLaunch* out);
TaskLaunch FromProto(const v1::TaskLaunch& launch);
void ToProto(const TaskReport& report, v1::TaskReport* out);
TaskReport FromProto(const v1::TaskReport& report);
std::vector<RemoteWorker> FromProto(const v1::ListWorkersReply& reply);

}  // namespace tierflow::api
