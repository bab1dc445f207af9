#include "cli/terminal_style.h"

#include <unistd.h>

#include <cstdlib>

namespace tierflow::cli {
namespace {

ColorChoice global_choice = ColorChoice::kAuto;

}  // namespace

ColorChoice GlobalColorChoice() { return global_choice; }
void SetGlobalColorChoice(ColorChoice choice) { global_choice = choice; }

bool ColorEnabled(ColorChoice choice, int fd) {
  if (choice != ColorChoice::kAuto) return choice == ColorChoice::kAlways;
  const char* no_color = std::getenv("NO_COLOR");
  if (no_color != nullptr && *no_color != '\0') return false;
  const char* term = std::getenv("TERM");
  if (term != nullptr && std::string_view(term) == "dumb") return false;
  return isatty(fd) == 1;
}

std::string_view StateColor(std::string_view state) {
  // Foreground colours of the UI's states (ui/src/states.ts).
  if (state == "succeeded") return "\033[32m";                    // green
  if (state == "cached") return "\033[36m";                       // cyan
  if (state == "running") return "\033[34m";                      // blue
  if (state == "retrying") return "\033[33m";                     // yellow
  if (state == "failed") return "\033[1;31m";                     // bold red
  if (state == "upstream_failed") return "\033[35m";              // magenta
  if (state == "cancelled") return "\033[33m";                    // yellow
  if (state == "queued" || state == "pending") return "\033[2m";  // dim
  return "";
}

std::function<std::string(std::string_view, std::string_view)> StdoutStatePainter() {
  if (!ColorEnabled(GlobalColorChoice(), STDOUT_FILENO)) return nullptr;
  return
      [](std::string_view state, std::string_view text) { return PaintState(true, state, text); };
}

std::string Paint(bool enabled, std::string_view sgr, std::string_view text) {
  if (!enabled || sgr.empty()) return std::string(text);
  std::string out;
  out.reserve(sgr.size() + text.size() + kReset.size());
  out.append(sgr).append(text).append(kReset);
  return out;
}

}  // namespace tierflow::cli
