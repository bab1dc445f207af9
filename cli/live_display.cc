// LiveDisplay (live_display.h): the frame builder, the TTY block and the
// plain lines.
#include "cli/live_display.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <ostream>

#include "api/run_failures.h"
#include "cli/terminal_style.h"
#include "common/strings.h"
#include "common/units.h"

namespace tierflow::cli {
namespace {

using api::RunCounts;
using api::RunProgress;
using api::TaskState;

// Redraws at most this often; and polls the store no faster.
constexpr std::chrono::milliseconds kMinInterval{100};
// Plain lines: a progress line at most this often.
constexpr std::chrono::seconds kPlainEvery{10};

// A segmented bar: succeeded and cached, failed (and upstream_failed),
// running, the rest. Without colour, characters tell them apart.
std::string Bar(const RunCounts& c, size_t width, bool color) {
  if (width == 0) return "";
  const uint64_t total = std::max<uint64_t>(c.total, 1);
  const uint64_t ok = c.succeeded + c.cached;
  const uint64_t bad = c.failed + c.upstream_failed + c.cancelled;
  auto cells = [&](uint64_t n) {
    size_t k = static_cast<size_t>(n * width / total);
    return n > 0 && k == 0 ? size_t{1} : k;  // a single failure is never invisible
  };
  size_t n_bad = cells(bad);
  size_t n_ok = std::min(cells(ok), width - std::min(width, n_bad));
  size_t n_run = std::min(cells(c.running), width - n_ok - n_bad);
  size_t n_rest = width - n_ok - n_bad - n_run;
  auto repeat = [](std::string_view glyph, size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += glyph;
    return s;
  };
  if (!color) {
    return StrCat(repeat("#", n_ok), repeat("!", n_bad), repeat(">", n_run), repeat(".", n_rest));
  }
  std::string bar;
  bar += PaintState(true, "succeeded", repeat("█", n_ok));
  bar += PaintState(true, c.failed + c.upstream_failed > 0 ? "failed" : "cancelled",
                    repeat("█", n_bad));
  bar += PaintState(true, "running", repeat("▒", n_run));
  bar += Paint(true, kDim, repeat("░", n_rest));
  return bar;
}

std::string Plural(uint64_t n, std::string_view word) {
  return StrCat(n, " ", word, n == 1 ? "" : "s");
}

// The words of the overall and stage lines: succeeded (or cached) of all,
// running, waiting, then what went wrong, each in its state's colour. A
// failed task is never counted with the ones that succeeded: "11/11" must
// not be what a failed run shows.
std::string CountWords(const RunCounts& c, bool color, bool with_waiting) {
  std::string text = StrCat(c.succeeded + c.cached, "/", c.total, " succeeded");
  if (c.cached > 0) text += StrCat(" (", c.cached, " cached)");
  auto add = [&](uint32_t n, std::string_view state, std::string_view word) {
    if (n > 0) text += StrCat(", ", PaintState(color, state, StrCat(n, " ", word)));
  };
  add(c.running, "running", "running");
  if (with_waiting && c.queued + c.pending > 0)
    text += StrCat(", ", c.queued + c.pending, " waiting");
  add(c.retrying, "retrying", "retrying");
  add(c.failed, "failed", "failed");
  add(c.upstream_failed, "upstream_failed", "upstream_failed");
  add(c.cancelled, "cancelled", "cancelled");
  return text;
}

std::string Pad(const std::string& text, size_t width) {
  size_t w = VisibleWidth(text);
  return w >= width ? text : text + std::string(width - w, ' ');
}

}  // namespace

std::string ClockText(std::chrono::milliseconds duration) {
  int64_t seconds = std::max<int64_t>(0, duration.count() / 1000);
  char text[32];
  if (seconds >= 3600) {
    snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(seconds / 3600),
             static_cast<long long>(seconds / 60 % 60), static_cast<long long>(seconds % 60));
  } else {
    snprintf(text, sizeof text, "%lld:%02lld", static_cast<long long>(seconds / 60),
             static_cast<long long>(seconds % 60));
  }
  return text;
}

std::string CountsText(const RunCounts& counts, bool color) {
  return CountWords(counts, color, true);
}

size_t VisibleWidth(const std::string& text) {
  size_t width = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char ch = static_cast<unsigned char>(text[i]);
    if (ch == 0x1b) {  // CSI ... final byte
      i += 1;
      while (i + 1 < text.size() && !(text[i + 1] >= 0x40 && text[i + 1] <= 0x7e)) ++i;
      ++i;
      continue;
    }
    if ((ch & 0xc0) != 0x80) ++width;  // not a continuation byte
  }
  return width;
}

std::string FitWidth(const std::string& text, size_t width) {
  if (VisibleWidth(text) <= width) return text;
  std::string out;
  size_t shown = 0;
  bool painted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char ch = static_cast<unsigned char>(text[i]);
    if (ch == 0x1b) {
      size_t start = i;
      i += 1;
      while (i + 1 < text.size() && !(text[i + 1] >= 0x40 && text[i + 1] <= 0x7e)) ++i;
      ++i;
      out.append(text, start, i - start + 1);
      painted = true;
      continue;
    }
    if ((ch & 0xc0) != 0x80) {
      if (shown + 1 >= width) break;  // room for the ellipsis
      ++shown;
    }
    out += text[i];
  }
  out += "…";
  if (painted) out += kReset;
  return out;
}

std::vector<std::string> BuildFrame(const FrameInput& in) {
  const RunProgress& p = in.progress;
  const bool color = in.color;
  const size_t width = static_cast<size_t>(std::max(in.columns - 1, 20));
  const size_t max_lines = static_cast<size_t>(std::max(in.rows - 2, 2));

  std::string header = StrCat(Paint(color, kBold, StrCat("run ", p.run_id)), " · ", p.pipeline,
                              " · ", Plural(p.counts.total, "task"));
  if (in.resumed) header += StrCat(" · resumed, ", in.done_at_start, " already done");
  if (p.state != api::RunState::kRunning) {
    header +=
        StrCat(" · ", PaintState(color, api::RunStateName(p.state), api::RunStateName(p.state)));
  } else if (p.engine == api::EngineStatus::kGone) {
    header += StrCat(" · ", Paint(color, kRed, "engine gone"));
  }
  const std::string clock =
      StrCat(ClockText(in.elapsed), in.eta ? StrCat("  ETA ", ClockText(*in.eta)) : "");
  // The bar takes what the words leave, between 10 and 40 cells.
  const std::string words = CountWords(p.counts, color, true);
  size_t room = width > VisibleWidth(words) + VisibleWidth(clock) + 6
                    ? width - VisibleWidth(words) - VisibleWidth(clock) - 6
                    : 10;
  std::string overall =
      StrCat(Bar(p.counts, std::clamp<size_t>(room, 10, 40), color), " ", words, "  ", clock);

  std::vector<std::string> extra;  // running tasks, data waits, copies
  for (size_t i = 0; i < p.running.size() && i < 3; ++i) {
    const api::RunningTask& t = p.running[i];
    extra.push_back(StrCat("  ", PaintState(color, "running", "▸"), " ", t.task_id, "  ",
                           ClockText(std::chrono::milliseconds(in.now_ms - t.started_at_ms))));
  }
  if (p.counts.running > 3 && !p.running.empty()) {
    extra.push_back(
        StrCat("  … ", p.counts.running - std::min<size_t>(3, p.running.size()), " more running"));
  }
  if (p.data_waits_total > 0) {
    std::string names;
    for (const std::string& id : p.data_waits) names += StrCat(names.empty() ? "" : ", ", id);
    if (p.data_waits_total > p.data_waits.size()) names += ", …";
    extra.push_back(
        StrCat("  waiting for data: ", Plural(p.data_waits_total, "task"), " (", names, ")"));
  }
  for (const api::CopyInFlight& copy : p.copies) {
    extra.push_back(StrCat("  copying ", copy.task_id, "/", copy.output, " → ", copy.tier, "  ",
                           FormatSize(static_cast<uint64_t>(std::max<int64_t>(copy.bytes, 0))),
                           "  ",
                           ClockText(std::chrono::milliseconds(in.now_ms - copy.started_at_ms))));
  }
  if (p.copies_total > p.copies.size()) {
    extra.push_back(StrCat("  … ", p.copies_total - p.copies.size(), " more copies"));
  }

  std::vector<std::string> lines = {header, overall};
  size_t room_left = max_lines - 2;
  // Stages get the room first, but leave the extras half of it.
  size_t extras_room = std::min(extra.size(), room_left / 2);
  size_t stage_room = room_left - extras_room;
  if (p.stages.size() <= stage_room) {
    extras_room = std::min(extra.size(), room_left - p.stages.size());
    stage_room = p.stages.size();
  }
  size_t name_width = 0;
  size_t kind_width = 0;
  for (const api::StageProgress& s : p.stages) {
    name_width = std::max(name_width, std::min<size_t>(VisibleWidth(s.stage), 24));
    kind_width = std::max(kind_width, VisibleWidth(s.kind));
  }
  const size_t shown_stages =
      p.stages.size() <= stage_room ? p.stages.size() : (stage_room > 0 ? stage_room - 1 : 0);
  for (size_t i = 0; i < shown_stages; ++i) {
    const api::StageProgress& s = p.stages[i];
    std::string name = FitWidth(s.stage, 24);
    lines.push_back(StrCat("  ", Pad(name, name_width), "  ", Pad(s.kind, kind_width), "  ",
                           Bar(s.counts, 20, color), " ", CountWords(s.counts, color, false)));
  }
  if (shown_stages < p.stages.size()) {
    lines.push_back(StrCat("  … ", p.stages.size() - shown_stages, " more stages"));
  }
  for (size_t i = 0; i < extras_room; ++i) lines.push_back(extra[i]);
  for (std::string& line : lines) line = FitWidth(line, width);
  if (lines.size() > max_lines) lines.resize(max_lines);
  return lines;
}

LiveDisplay::LiveDisplay(std::ostream& out, DisplayOptions options)
    : out_(out), options_(std::move(options)) {
  thread_ = std::thread([this] { Loop(); });
}

LiveDisplay::~LiveDisplay() { Stop(); }

void LiveDisplay::OnRunStarted(const std::string& run_id, bool resumed,
                               const api::RunCounts& counts) {
  std::lock_guard lock(mu_);
  run_id_ = run_id;
  resumed_ = resumed;
  done_at_start_ = counts.done();
  exact_ = counts;
  started_ = std::chrono::steady_clock::now();
  cv_.notify_all();
}

void LiveDisplay::OnTaskEvent(const api::TaskEvent& e, const api::RunCounts& counts) {
  std::lock_guard lock(mu_);
  exact_ = counts;
  if (!options_.run_events) return;
  const std::string attempt = e.attempt > 1 ? StrCat(" (attempt ", e.attempt, ")") : "";
  const bool color = options_.color;
  if (e.state == TaskState::kRetrying) {
    messages_.push_back(StrCat(e.task_id, " ", PaintState(color, "retrying", "failed"), attempt,
                               ": ", e.message, "\n"));
  } else if (e.state == TaskState::kFailed) {
    messages_.push_back(StrCat(e.task_id, " ", PaintState(color, "failed", "FAILED"), attempt, ": ",
                               e.message, "\n",
                               e.log_path.empty() ? "" : StrCat("  log: ", e.log_path, "\n")));
  } else {
    return;  // the others are counted
  }
  cv_.notify_all();
}

void LiveDisplay::Attach(const std::string& run_id) {
  std::lock_guard lock(mu_);
  run_id_ = run_id;
  started_ = std::chrono::steady_clock::now();
  cv_.notify_all();
}

void LiveDisplay::Print(std::ostream& stream, const std::string& text) {
  std::lock_guard lock(mu_);
  ClearBlock();
  out_.flush();
  stream << FitMessage(text) << std::flush;
  if (!stopped_ && last_) Draw(*last_);
}

std::optional<api::RunProgress> LiveDisplay::Last() {
  std::lock_guard lock(mu_);
  return last_;
}

void LiveDisplay::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::chrono::milliseconds LiveDisplay::Interval() const {
  // A snapshot of a big run costs more: poll at most 1/20 of the time in it.
  auto adaptive = std::chrono::duration_cast<std::chrono::milliseconds>(read_time_ * 20);
  auto interval = std::max(kMinInterval, adaptive);
  if (!options_.tty)
    interval = std::max<std::chrono::milliseconds>(interval, std::chrono::seconds(1));
  return interval;
}

void LiveDisplay::Loop() {
  // The block is redrawn every kMinInterval (the clock, the engine's exact
  // counts); the store is read at the pace Interval() allows, so that a
  // snapshot of a 100k-task run (~0.1-0.2 s) never takes more than 1/20 of
  // the time.
  auto next_read = std::chrono::steady_clock::now();
  const auto tick = options_.tty ? kMinInterval : std::chrono::milliseconds(1000);
  for (;;) {
    std::string run_id;
    bool stopping;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, tick, [&] { return stopping_ || !messages_.empty(); });
      stopping = stopping_;
      run_id = run_id_;
      if (!messages_.empty() && !options_.quiet) {
        ClearBlock();
        for (const std::string& message : messages_) out_ << FitMessage(message);
        out_.flush();
      }
      messages_.clear();
    }
    std::optional<RunProgress> progress;
    const auto now = std::chrono::steady_clock::now();
    if (!run_id.empty() && !options_.quiet && (stopping || now >= next_read)) {
      if (reader_ == nullptr || reader_->run_id() != run_id) {
        absl::StatusOr<std::unique_ptr<api::ProgressReader>> opened =
            api::ProgressReader::Open(options_.db_flag, run_id);
        if (opened.ok()) reader_ = std::move(*opened);
      }
      if (reader_ != nullptr) {
        absl::StatusOr<RunProgress> read = reader_->Read();
        read_time_ = std::chrono::duration_cast<std::chrono::microseconds>(reader_->last_read());
        if (read.ok()) progress = std::move(*read);
        next_read = std::chrono::steady_clock::now() + Interval();
      }
    }
    // Watch: the failures another process's engine recorded, as they come.
    std::vector<std::string> failed_lines;
    if (progress && !options_.run_events && progress->counts.failed > failures_seen_.size()) {
      api::FailureOptions list_options;
      list_options.tail_lines = 0;  // the summary shows the logs
      absl::StatusOr<api::FailureList> list =
          api::ListFailures(options_.db_flag, run_id, list_options);
      if (list.ok()) {
        for (const api::FailureReport& f : list->failures) {
          if (!failures_seen_.insert(f.task.id).second) continue;
          std::string message = f.task.message;
          if (message.empty() && !f.task.attempts.empty()) message = f.task.attempts[0].message;
          failed_lines.push_back(StrCat(
              f.task.id, " ", PaintState(options_.color, "failed", "FAILED"), ": ", message, "\n"));
        }
      }
    }
    std::lock_guard lock(mu_);
    if (!failed_lines.empty()) {
      ClearBlock();
      for (const std::string& line : failed_lines) out_ << FitMessage(line);
    }
    if (progress) last_ = std::move(progress);
    if (last_ && !options_.quiet) {
      if (exact_) last_->counts = *exact_;  // the engine's own, never behind
      if (options_.tty) {
        Draw(*last_);
      } else {
        PlainUpdate(*last_);
      }
    }
    if (stopping) {
      if (cursor_hidden_) {
        out_ << "\033[?25h";
        cursor_hidden_ = false;
      }
      drawn_.clear();  // the last frame stays on the screen
      out_.flush();
      stopped_ = true;
      return;
    }
  }
}

std::string LiveDisplay::FitMessage(const std::string& text) const {
  if (!options_.tty) return text;
  // On the terminal each line is cut to its width: a wrapped line would
  // push the block down; the summary repeats the whole failure.
  winsize size{};
  if (ioctl(options_.fd, TIOCGWINSZ, &size) != 0 || size.ws_col == 0) return text;
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out += FitWidth(text.substr(start, end - start), size.ws_col - 1u);
    out += '\n';
    start = end + 1;
  }
  return out;
}

void LiveDisplay::Draw(const RunProgress& progress) {
  FrameInput input;
  input.progress = progress;
  input.resumed = resumed_;
  input.done_at_start = done_at_start_;
  input.now_ms = WallClockMs();
  input.color = options_.color;
  auto elapsed = std::chrono::steady_clock::now() - started_;
  input.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed);
  if (progress.started_at_ms && !resumed_) {
    // Watch: the run's own start; run: the same within a few ms.
    input.elapsed = std::chrono::milliseconds(
        (progress.finished_at_ms ? *progress.finished_at_ms : input.now_ms) -
        *progress.started_at_ms);
  }
  const RunCounts& c = progress.counts;
  if (c.done() > 0 && c.done() < c.total && progress.state == api::RunState::kRunning) {
    input.eta = input.elapsed * (c.total - c.done()) / c.done();
  }
  winsize size{};
  if (ioctl(options_.fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 && size.ws_row > 0) {
    input.columns = size.ws_col;
    input.rows = size.ws_row;
  }
  if (!drawn_.empty() && input.columns < drawn_columns_) ForgetRewrappedBlock(input.columns);
  drawn_columns_ = input.columns;
  WriteFrame(BuildFrame(input));
}

// The terminal got narrower under the block: terminals that reflow (tmux,
// VTE, iTerm2) rewrap each of its lines wider than the new width onto
// several rows, so moving up drawn_.size() rows would land inside it and the
// next frame would be drawn below a torn copy. Clears the rows it now takes
// instead, and draws the next frame whole. (A terminal that cuts lines
// instead of rewrapping loses as many rows above the block, which held
// output already printed: the cost of not knowing which kind it is.)
void LiveDisplay::ForgetRewrappedBlock(int columns) {
  size_t rows = 0;
  for (const std::string& line : drawn_) {
    const size_t width = VisibleWidth(line);
    rows += std::max<size_t>(1, (width + static_cast<size_t>(columns) - 1) / columns);
  }
  std::string text = StrCat("\033[", rows, "A");
  for (size_t i = 0; i < rows; ++i) text += "\r\033[K\n";
  text += StrCat("\033[", rows, "A");
  out_ << text;
  drawn_.clear();
}

void LiveDisplay::WriteFrame(const std::vector<std::string>& lines) {
  std::string text;
  if (!cursor_hidden_) {
    text += "\033[?25l";
    cursor_hidden_ = true;
  }
  if (!drawn_.empty()) text += StrCat("\033[", drawn_.size(), "A");
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i >= drawn_.size() || drawn_[i] != lines[i]) text += StrCat("\r\033[K", lines[i]);
    text += "\n";
  }
  if (drawn_.size() > lines.size()) {
    const size_t surplus = drawn_.size() - lines.size();
    for (size_t i = 0; i < surplus; ++i) text += "\r\033[K\n";
    text += StrCat("\033[", surplus, "A");
  }
  drawn_ = lines;
  out_ << text << std::flush;
}

void LiveDisplay::ClearBlock() {
  if (!options_.tty || drawn_.empty()) return;
  // Line by line, not with "clear to the end of the screen": from the top
  // row that would clear the whole screen, which tmux (scroll-on-clear)
  // and some terminals push into the scrollback.
  std::string text = StrCat("\033[", drawn_.size(), "A");
  for (size_t i = 0; i < drawn_.size(); ++i) text += "\r\033[K\n";
  text += StrCat("\033[", drawn_.size(), "A");
  out_ << text;
  drawn_.clear();
}

void LiveDisplay::PlainUpdate(const RunProgress& p) {
  const bool color = options_.color;
  if (!header_written_) {
    out_ << (resumed_ ? "resuming run " : "run ") << p.run_id << ": "
         << Plural(p.counts.total, "task");
    if (resumed_) out_ << ", " << done_at_start_ << " already done";
    out_ << " (pipeline " << p.pipeline << ")\n";
    header_written_ = true;
    plain_at_ = std::chrono::steady_clock::now();
  }
  bool stage_ended = false;
  for (const api::StageProgress& s : p.stages) {
    if (s.counts.total == 0 || s.counts.done() < s.counts.total) continue;
    if (std::find(stages_done_.begin(), stages_done_.end(), s.stage) != stages_done_.end()) {
      continue;
    }
    stages_done_.push_back(s.stage);
    out_ << "stage " << s.stage << " finished: " << CountWords(s.counts, color, false) << '\n';
    stage_ended = true;
  }
  const auto now = std::chrono::steady_clock::now();
  if (stage_ended || now - plain_at_ >= kPlainEvery) {
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - started_);
    out_ << "[" << ClockText(elapsed) << "] " << CountWords(p.counts, color, true) << '\n';
    plain_at_ = now;
  }
  out_.flush();
}

}  // namespace tierflow::cli
