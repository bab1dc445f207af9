// The live display of a run: `tierflow run`/`resume` (fed as the engine's
// RunObserver) and `tierflow watch` (attached to a run another process
// drives). Both read what they show from the state store (api/run_progress.h),
// polled read-only at a pace set by how long a snapshot takes; the observer
// calls only record exact counts and queue failure and retry lines, and wake
// the display's thread: they never do I/O.
//
// On a terminal: one block redrawn in place (header, overall bar with
// done/running/waiting/failed, elapsed and ETA, one line per stage, running
// tasks, data waits and copies in flight), fitted to the terminal's size,
// redrawn at most 10 times a second, rewriting only changed lines; lines
// printed meanwhile (Print) go above it. Elsewhere: plain lines, the header,
// a progress line at most every 10 s and at each stage's end, every failure
// and retry as it happens. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/embedded.h"
#include "api/run_progress.h"

namespace tierflow::cli {

struct DisplayOptions {
  std::string db_flag;     // the --db flag as given ("": the default store)
  bool tty = false;        // the block redrawn in place; else plain lines
  bool color = false;      // SGR colours
  bool quiet = false;      // nothing until Stop (the summary comes after)
  int fd = 1;              // the terminal's descriptor, for its size
  bool run_events = true;  // failure and retry lines come from the observer
};

// One line of the block: the pure part, testable without a terminal.
struct FrameInput {
  api::RunProgress progress;
  bool resumed = false;
  uint32_t done_at_start = 0;  // of a resumed run
  int64_t now_ms = 0;
  std::chrono::milliseconds elapsed{0};
  std::optional<std::chrono::milliseconds> eta;
  int columns = 80;
  int rows = 24;
  bool color = false;
};
// The block's lines: never more than rows - 2 of them, none wider than
// columns - 1 visible characters.
std::vector<std::string> BuildFrame(const FrameInput& input);

// "1:05" / "1:02:03".
std::string ClockText(std::chrono::milliseconds duration);
// "12/300 done (2 cached), 4 running, 20 waiting, 1 failed": the words of
// the overall line, coloured by state when `color`.
std::string CountsText(const api::RunCounts& counts, bool color);

// Visible width of `text`: code points, SGR sequences not counted.
size_t VisibleWidth(const std::string& text);
// `text` cut to `width` visible characters (an ellipsis marks the cut),
// SGR sequences kept and a reset added when one is open.
std::string FitWidth(const std::string& text, size_t width);

class LiveDisplay final : public api::RunObserver {
 public:
  LiveDisplay(std::ostream& out, DisplayOptions options);
  ~LiveDisplay() override;
  LiveDisplay(const LiveDisplay&) = delete;
  LiveDisplay& operator=(const LiveDisplay&) = delete;

  void OnRunStarted(const std::string& run_id, bool resumed, const api::RunCounts& counts) override;
  void OnTaskEvent(const api::TaskEvent& event, const api::RunCounts& counts) override;

  // Shows run `run_id` from now on (`tierflow watch`).
  void Attach(const std::string& run_id);
  // Writes `text` (lines ending in '\n') to `stream` above the block: the
  // block is cleared first and redrawn below.
  void Print(std::ostream& stream, const std::string& text);
  // Draws a last frame and shows the cursor; nothing is drawn after.
  void Stop();
  // The last snapshot read (unset before the first).
  std::optional<api::RunProgress> Last();

 private:
  void Loop();
  void Draw(const api::RunProgress& progress);  // mu_ held
  void ClearBlock();                            // mu_ held
  std::string FitMessage(const std::string& text) const;
  void ForgetRewrappedBlock(int columns);
  void WriteFrame(const std::vector<std::string>& lines);
  void PlainUpdate(const api::RunProgress& progress);
  std::chrono::milliseconds Interval() const;

  std::ostream& out_;
  const DisplayOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool stopped_ = false;
  std::string run_id_;
  bool resumed_ = false;
  uint32_t done_at_start_ = 0;
  std::optional<api::RunCounts> exact_;  // from the observer
  std::vector<std::string> messages_;    // failure and retry lines to print
  std::optional<api::RunProgress> last_;
  std::unique_ptr<api::ProgressReader> reader_;  // the loop's thread only
  std::chrono::microseconds read_time_{0};
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  // TTY: the lines on the screen, the cursor below the last one.
  std::vector<std::string> drawn_;
  int drawn_columns_ = 0;  // the terminal's width when drawn_ was written
  bool cursor_hidden_ = false;
  // Plain: when the last progress line was written, and the stages done then.
  std::chrono::steady_clock::time_point plain_at_{};
  std::vector<std::string> stages_done_;
  bool header_written_ = false;
  std::set<std::string> failures_seen_;  // watch: failed tasks already printed
  std::thread thread_;
};

}  // namespace tierflow::cli
