// Embedded mode (DESIGN.md "Modes" 1): the scheduler's engine wired to a
// local worker pool in this process, for `tierflow run`. The only place
// that joins scheduler/ and worker/.
#pragma once

#include <memory>

#include "scheduler/engine.h"

namespace tierflow::api {

// An engine whose tasks run on this machine's local worker pool.
std::unique_ptr<scheduler::Engine> MakeEmbeddedEngine(scheduler::EngineOptions options);

}  // namespace tierflow::api
