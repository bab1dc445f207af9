// Whether a shell-string command needs a shell at all. Most commands in
// pipelines are a program and its arguments (`python3 train.py --lr 0.1`);
// make runs such a recipe by splitting it into words and executing the
// program itself, saving the shell's start (about half of a short task's
// cost). tierflow does the same, with a test that errs on the side of the
// shell: a command is run directly only when running it through `/bin/sh -c`
// could not behave differently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tierflow {

struct ShellForm {
  // The words to execute, argv[0] first; empty when the command needs the
  // shell.
  std::vector<std::string> words;
  // Why it needs the shell, for the attempt's record and `tierflow plan`:
  // "`$` at offset 7", "`cd` is a shell builtin". Empty when it does not.
  std::string why_shell;
  bool direct() const { return !words.empty(); }
};

// Splits `script` into words at runs of spaces and tabs when it is a plain
// word list naming a program, which the shell would run exactly as
// execvp(words[0], words) does. It needs the shell when it holds any byte a
// POSIX shell (or bash, for systems where /bin/sh is bash) gives meaning to:
//   - quotes and escapes:          ' " ` backslash
//   - expansions:                  $ ~ * ? [ ] { } ^ !
//   - operators and redirections:  ; & | < > ( )
//   - a comment:                   #
//   - a control character other than a space or a tab (a newline, say);
// when its first word is an assignment (holds `=`), a reserved word or a
// shell builtin (`cd`, `exit`, `export`, `ulimit`, `true`, `echo`, `test`,
// ...; builtins that also exist as programs run as the builtin in a shell,
// and some behave differently: dash's `echo -e`), or when it has no words.
ShellForm ClassifyShellCommand(std::string_view script);

}  // namespace tierflow
