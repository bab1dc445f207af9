// Time as the components that time things out read it (the engine's
// retries and checkpoint polls, the local pool's task timeouts and kill
// grace, a worker's heartbeats, ...), injected so that their tests run on
// a FakeClock in microseconds instead of sleeping (STYLE.md "Inject the
// world"). SystemClock() is safe from any thread; a FakeClock may be read
// from any thread while the test that owns it moves it.
//
// A thread that sleeps until a deadline on a clock sleeps for at most
// (deadline - Now()) of real time and listens to the clock (ClockListener):
// a FakeClock that is advanced wakes it to look again, a real clock never
// jumps and calls nobody.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "common/units.h"

namespace tierflow {

using SteadyTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (what users are shown as times too).
  virtual int64_t NowMs() const = 0;
  // Monotonic time: what timers and deadlines are set on.
  virtual SteadyTime Now() const = 0;

 private:
  friend class ClockListener;
  // `moved` is called, on the thread that moves the clock, each time it
  // jumps, until Unlisten(key) returns.
  virtual void Listen(const void* /*key*/, std::function<void()> /*moved*/) const {}
  virtual void Unlisten(const void* /*key*/) const {}
};

// The system's clocks (WallClockMs, std::chrono::steady_clock), one for
// the whole process.
inline const Clock& SystemClock() {
  struct System final : Clock {
    int64_t NowMs() const override { return WallClockMs(); }
    SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  };
  static const System system;
  return system;
}

// Calls `moved` whenever `clock` jumps, for its lifetime: what wakes a
// sleeper whose deadline a FakeClock's Advance passed. `moved` must be
// quick and must not destroy this listener.
class ClockListener {
 public:
  ClockListener(const Clock& clock, std::function<void()> moved) : clock_(clock) {
    clock_.Listen(this, std::move(moved));
  }
  ~ClockListener() { clock_.Unlisten(this); }
  ClockListener(const ClockListener&) = delete;
  ClockListener& operator=(const ClockListener&) = delete;

 private:
  const Clock& clock_;
};

// A clock that moves only when told to; its steady time moves with NowMs.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_ms = 1'700'000'000'000) : now_ms_(now_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  SteadyTime Now() const override { return SteadyTime(std::chrono::milliseconds(now_ms_.load())); }
  // Moves the clock, then wakes its listeners (on this thread).
  void Advance(std::chrono::milliseconds by) {
    now_ms_ += by.count();
    std::lock_guard lock(mu_);
    for (const auto& [key, moved] : listeners_) moved();
  }

 private:
  void Listen(const void* key, std::function<void()> moved) const override {
    std::lock_guard lock(mu_);
    listeners_.emplace_back(key, std::move(moved));
  }
  void Unlisten(const void* key) const override {
    std::lock_guard lock(mu_);
    std::erase_if(listeners_, [key](const auto& listener) { return listener.first == key; });
  }

  std::atomic<int64_t> now_ms_;
  // Listening changes no time: a const clock takes listeners.
  mutable std::mutex mu_;
  mutable std::vector<std::pair<const void*, std::function<void()>>> listeners_;  // guarded by mu_
};

}  // namespace tierflow
