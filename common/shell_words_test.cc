#include "common/shell_words.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tierflow {
namespace {

using Words = std::vector<std::string>;

TEST(ShellWordsTest, PlainWordListsAreSplitAtSpacesAndTabs) {
  EXPECT_EQ(ClassifyShellCommand("python3 train.py --lr 0.1").words,
            (Words{"python3", "train.py", "--lr", "0.1"}));
  EXPECT_EQ(ClassifyShellCommand("  ./bin/tool\t-x   a=b  ").words,
            (Words{"./bin/tool", "-x", "a=b"}));
  EXPECT_EQ(ClassifyShellCommand("/usr/bin/true").words, (Words{"/usr/bin/true"}));
  EXPECT_EQ(ClassifyShellCommand("sort -k2,2 -t: data.csv").words,
            (Words{"sort", "-k2,2", "-t:", "data.csv"}));
  EXPECT_TRUE(ClassifyShellCommand("tool 100% done@host +x").direct());
  EXPECT_TRUE(ClassifyShellCommand("python3 t.py --name=caf\xc3\xa9").direct());
}

TEST(ShellWordsTest, AnyShellSyntaxNeedsTheShell) {
  for (const char* script :
       {"echo $HOME", "a 'b'",    "a \"b\"", "a `b`",   "a \\b",  "a ~",     "ls ~/x",   "ls *.py",
        "ls a?",      "ls [ab]",  "ls a]",   "a {b,c}", "a }",    "a ^b",    "a !b",     "a; b",
        "a && b",     "a & ",     "a | b",   "a || b",  "a < in", "a > out", "a >> out", "a 2>&1",
        "(a)",        "a # note", "a\nb",    "a\rb",    "a\x01",  "a\x7f"}) {
    const ShellForm form = ClassifyShellCommand(script);
    EXPECT_FALSE(form.direct()) << script;
    EXPECT_FALSE(form.why_shell.empty()) << script;
  }
  EXPECT_EQ(ClassifyShellCommand("echo $HOME").why_shell, "`$` at offset 5");
  EXPECT_EQ(ClassifyShellCommand("a\nb").why_shell, "a control character (\\n) at offset 1");
}

TEST(ShellWordsTest, BuiltinsReservedWordsAndAssignmentsNeedTheShell) {
  for (const char* script :
       {"cd /tmp",   "exit 3",  "export A", "ulimit -n 10", "! false", "{",         "if",
        "while",     "for",     "case",     "true",         "false",   "echo -e x", "printf x",
        "test -f x", "[ -f x",  "kill 1",   "pwd",          ". ./env", ": nothing", "exec tool",
        "eval x",    "set -e",  "source x", "time tool",    "wait",    "umask 022", "trap x",
        "read x",    "alias a", "local x",  "command -v x"}) {
    EXPECT_FALSE(ClassifyShellCommand(script).direct()) << script;
  }
  EXPECT_EQ(ClassifyShellCommand("cd /tmp").why_shell, "`cd` is a shell builtin or reserved word");
  EXPECT_EQ(ClassifyShellCommand("FOO=1 tool").why_shell, "`FOO=1` is a variable assignment");
  EXPECT_FALSE(ClassifyShellCommand("").direct());
  EXPECT_FALSE(ClassifyShellCommand(" \t ").direct());
  EXPECT_EQ(ClassifyShellCommand("").why_shell, "the command is empty");
  // A builtin's name later in the line is only an argument.
  EXPECT_TRUE(ClassifyShellCommand("tool cd exit").direct());
  // A path naming a program is never a builtin.
  EXPECT_TRUE(ClassifyShellCommand("/bin/echo hi").direct());
}

}  // namespace
}  // namespace tierflow
