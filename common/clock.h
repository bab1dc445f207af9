// Time as the components that time things out read it (a worker's
// heartbeats, ...), injected so that their tests run on a FakeClock in
// microseconds instead of sleeping (STYLE.md "Inject the world").
// SystemClock() is safe from any thread; a FakeClock may be read from any
// thread while the test that owns it moves it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "common/units.h"

namespace tierflow {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (what users are shown as times too).
  virtual int64_t NowMs() const = 0;
};

// The system's wall clock (WallClockMs), one for the whole process.
inline const Clock& SystemClock() {
  struct Wall final : Clock {
    int64_t NowMs() const override { return WallClockMs(); }
  };
  static const Wall wall;
  return wall;
}

// A clock that moves only when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_ms = 1'700'000'000'000) : now_ms_(now_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  void Advance(std::chrono::milliseconds by) { now_ms_ += by.count(); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace tierflow
