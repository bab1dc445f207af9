// How the CLI colours what it prints: `--color auto|always|never` (a flag of
// every command), NO_COLOR (https://no-color.org: set and not empty, no
// colour unless --color always), and one colour per task and run state, the
// UI's (ui/src/states.ts) as near as 16 colours get. The live display, the
// end summary, `runs`, `status` and `logs` all colour through here.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace tierflow::cli {

enum class ColorChoice { kAuto, kAlways, kNever };

// The --color flag's words, in the order --help lists them.
inline constexpr std::string_view kColorChoices[] = {"auto", "always", "never"};

// The process's --color choice (kAuto until main sets it).
ColorChoice GlobalColorChoice();
void SetGlobalColorChoice(ColorChoice choice);

// Whether text written to file descriptor `fd` is coloured: kAlways yes,
// kNever no; kAuto when `fd` is a terminal, TERM is not "dumb" and NO_COLOR
// is unset or empty.
bool ColorEnabled(ColorChoice choice, int fd);

// SGR codes: a state word's colour ("" for a word without one), and the
// few others the displays use.
std::string_view StateColor(std::string_view state);
inline constexpr std::string_view kBold = "\033[1m";
inline constexpr std::string_view kDim = "\033[2m";
inline constexpr std::string_view kRed = "\033[31m";
inline constexpr std::string_view kReset = "\033[0m";

// `text` in `sgr` when `enabled` (and `sgr` is not ""), else as it is.
std::string Paint(bool enabled, std::string_view sgr, std::string_view text);
// A painter of state words (api::StatePainter) for what goes to standard
// output: PaintState when ColorEnabled(GlobalColorChoice(), STDOUT_FILENO),
// else empty (no colour).
std::function<std::string(std::string_view state, std::string_view text)> StdoutStatePainter();

// `text` in the colour of `state`.
inline std::string PaintState(bool enabled, std::string_view state, std::string_view text) {
  return Paint(enabled, StateColor(state), text);
}

}  // namespace tierflow::cli
