#include "common/shell_words.h"

#include <algorithm>
#include <iterator>

#include "common/strings.h"

namespace tierflow {
namespace {

// Bytes with a meaning to sh or bash anywhere in a word (see the header).
bool IsShellSyntax(unsigned char c) {
  switch (c) {
    case '\'':
    case '"':
    case '`':
    case '\\':
    case '$':
    case '~':
    case '*':
    case '?':
    case '[':
    case ']':
    case '{':
    case '}':
    case '^':
    case '!':
    case ';':
    case '&':
    case '|':
    case '<':
    case '>':
    case '(':
    case ')':
    case '#':
      return true;
    default:
      return (c < 0x20 && c != ' ' && c != '\t') || c == 0x7f;
  }
}

// Reserved words and builtins of dash (Debian's /bin/sh), POSIX and bash: as
// a command's first word, the shell does not look the program up.
constexpr std::string_view kShellWords[] = {
    // reserved words
    "!", "[[", "]]", "case", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if",
    "in", "select", "then", "time", "until", "while",
    // builtins
    ".", ":", "[", "alias", "bg", "bind", "break", "builtin", "caller", "cd", "chdir", "command",
    "continue", "declare", "dirs", "disown", "echo", "enable", "eval", "exec", "exit", "export",
    "false", "fc", "fg", "getopts", "hash", "help", "history", "jobs", "kill", "let", "local",
    "login", "logout", "mapfile", "newgrp", "popd", "printf", "pushd", "pwd", "read", "readarray",
    "readonly", "return", "set", "shift", "shopt", "source", "suspend", "test", "times", "trap",
    "true", "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait"};

bool IsShellWord(std::string_view word) {
  return std::find(std::begin(kShellWords), std::end(kShellWords), word) != std::end(kShellWords);
}

}  // namespace

ShellForm ClassifyShellCommand(std::string_view script) {
  ShellForm form;
  for (size_t i = 0; i < script.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(script[i]);
    if (IsShellSyntax(c)) {
      form.why_shell =
          c < 0x20 || c == 0x7f
              ? StrCat("a control character (", CEscape(script.substr(i, 1)), ") at offset ", i)
              : StrCat("`", script.substr(i, 1), "` at offset ", i);
      return form;
    }
  }
  std::vector<std::string> words;
  for (size_t i = 0; i < script.size();) {
    while (i < script.size() && (script[i] == ' ' || script[i] == '\t')) ++i;
    size_t end = i;
    while (end < script.size() && script[end] != ' ' && script[end] != '\t') ++end;
    if (end > i) words.emplace_back(script.substr(i, end - i));
    i = end;
  }
  if (words.empty()) {
    form.why_shell = "the command is empty";
  } else if (words[0].find('=') != std::string::npos) {
    form.why_shell = StrCat("`", words[0], "` is a variable assignment");
  } else if (IsShellWord(words[0])) {
    form.why_shell = StrCat("`", words[0], "` is a shell builtin or reserved word");
  } else {
    form.words = std::move(words);
  }
  return form;
}

}  // namespace tierflow
