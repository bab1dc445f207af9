// Plain-text tables for the CLI's listings: columns padded to their widest
// cell (counted in characters, not UTF-8 bytes nor colour codes), two spaces apart; the last
// column is not padded and no line ends in spaces.
#pragma once

#include <algorithm>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace tierflow::api {

// Characters in UTF-8 `text` (continuation bytes do not count), without
// the SGR colour sequences ("\033[...m") a painted cell holds: cells are
// Printable text, so an escape in one was put there to colour it.
inline size_t TextWidth(std::string_view text) {
  size_t width = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\033' && i + 1 < text.size() && text[i + 1] == '[') {
      const size_t end = text.find('m', i);
      if (end != std::string_view::npos) {
        i = end;
        continue;
      }
    }
    if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) ++width;
  }
  return width;
}

class TextTable {
 public:
  explicit TextTable(std::vector<std::string> headings) { rows_.push_back(std::move(headings)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  void Write(std::ostream& out) const {
    std::vector<size_t> widths(rows_[0].size(), 0);
    for (const auto& row : rows_) {
      for (size_t c = 0; c + 1 < row.size(); ++c) {
        widths[c] = std::max(widths[c], TextWidth(row[c]));
      }
    }
    for (const auto& row : rows_) {
      std::string line;
      for (size_t c = 0; c < row.size(); ++c) {
        line += row[c];
        if (c + 1 < row.size()) line += std::string(widths[c] - TextWidth(row[c]) + 2, ' ');
      }
      line.erase(line.find_last_not_of(' ') + 1);
      out << line << '\n';
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace tierflow::api
