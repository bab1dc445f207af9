#!/usr/bin/env python3
"""Shell-string commands run directly when they need no shell (CTest:
shell_exec).

Each case runs twice in one pipeline: as written, which tierflow classifies,
and with a trailing `;`, which forces `/bin/sh -c` without changing what the
command does. The two must agree on the exit code, on the log (up to the
shell's and tierflow's own wording of a start failure, which must name the
program) and on the environment the command sees. The store must say how
each ran (`exec` in the attempt's command), and `tierflow plan --output json`
must say it before the run.

Usage: shell_exec_test.py TIERFLOW_BIN
"""
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile

TIERFLOW = os.path.abspath(sys.argv[1])

# name -> (command, runs directly?)
CASES = {
    "env": ("env", True),
    "env_args": ("env -u HOME", True),
    "ls_missing": ("ls /nonexistent-tierflow-path", True),  # exit 2
    "missing": ("no-such-program-tf arg", True),  # 127
    "not_exec": ("./not_executable.sh", True),  # 126
    "no_shebang": ("./no_shebang one two", True),  # a shell script without #!
    "relative": ("./print_args.py a b   c", True),
    "tabs": ("./print_args.py\tx\t\ty", True),
}
# Strings that must go through the shell, and why.
SHELL_ONLY = {
    "dollar": "echo $HOME",
    "quote": "printf '%s' x",
    "assign": "FOO=1 env",
    "builtin_cd": "cd / && pwd",
    "builtin_exit": "exit 3",
    "builtin_true": "true",
    "reserved": "! false",
    "glob": "ls *.py",
    "tilde": "ls ~",
    "redirect": "env > /dev/null",
    "pipe": "env | sort",
    "comment": "env # comment",
    "backslash": "ls \\x",
    "newline": "env\nenv",
    "brace": "{ env; }",
}


def fail(message):
    print(f"shell_exec: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    work = tempfile.mkdtemp(prefix="tierflow-shell-exec.")
    project = os.path.join(work, "p")
    os.makedirs(project)
    with open(os.path.join(project, "not_executable.sh"), "w") as f:
        f.write("#!/bin/sh\necho never\n")
    with open(os.path.join(project, "no_shebang"), "w") as f:
        f.write('echo "script args: $*"\n')
    os.chmod(os.path.join(project, "no_shebang"), 0o755)
    with open(os.path.join(project, "print_args.py"), "w") as f:
        f.write("#!/usr/bin/env python3\nimport sys\nprint(sys.argv[1:])\n")
    os.chmod(os.path.join(project, "print_args.py"), 0o755)

    lines = ["name: shellexec", "stages:"]
    for name, (command, _) in CASES.items():
        lines += [f"  {name}:", f"    run: {json.dumps(command)}"]
        lines += [f"  {name}_sh:", f"    run: {json.dumps(command + ';')}"]
    for name, command in SHELL_ONLY.items():
        lines += [f"  only_{name}:", f"    run: {json.dumps(command)}"]
    pipeline = os.path.join(project, "pipeline.yaml")
    with open(pipeline, "w") as f:
        f.write("\n".join(lines) + "\n")
    db = os.path.join(work, "state", "tierflow.db")
    env = dict(os.environ, TIERFLOW_RAM_ROOT=os.path.join(work, "ram"), PWD="/stale/pwd")

    plan = subprocess.run([TIERFLOW, "plan", "--output", "json", pipeline], env=env, cwd=project,
                          capture_output=True, text=True, timeout=120)
    if plan.returncode != 0:
        fail(f"plan exited {plan.returncode}: {plan.stderr}")
    planned = {t["stage"]: t for layer in json.loads(plan.stdout)["layers"] for t in layer["tasks"]}
    for name, (_, direct) in CASES.items():
        if planned[name].get("shell_exec") != ("direct" if direct else "sh"):
            fail(f"plan: {name}: {planned[name]}")
        if planned[name + "_sh"].get("shell_exec") != "sh":
            fail(f"plan: {name}_sh: {planned[name + '_sh']}")
    for name in SHELL_ONLY:
        task = planned["only_" + name]
        if task.get("shell_exec") != "sh" or not task.get("why_shell"):
            fail(f"plan: only_{name} should need the shell, with a reason: {task}")

    run = subprocess.run([TIERFLOW, "run", pipeline, "--db", db, "--quiet"],
                         env=env, cwd=project, capture_output=True, text=True, timeout=300)
    if run.returncode == 0:
        fail("the run should fail: some cases exit non-zero")
    store = sqlite3.connect(db)
    rows = {r[0]: r[1:] for r in store.execute(
        "SELECT task_id, exit_code, command, log_path, message FROM attempts")}

    def log(task):
        path = rows[task][2]
        if not os.path.isabs(path):
            path = os.path.join(os.path.dirname(db), path)
        if not os.path.exists(path):
            return ""
        with open(path) as f:
            return f.read()

    def env_of(task):
        # What differs between two tasks by design: their own identity.
        out = {}
        for line in log(task).splitlines():
            key, _, value = line.partition("=")
            if key.startswith("TIERFLOW_"):
                continue
            out[key] = value
        return out

    for name, (command, direct) in CASES.items():
        if name not in rows or name + "_sh" not in rows:
            fail(f"{name}: no attempt recorded; run stderr: {run.stderr}")
        code, cmd, _, message = rows[name]
        code_sh, cmd_sh, _, _ = rows[name + "_sh"]
        recorded = json.loads(cmd)
        if recorded.get("exec") != ("direct" if direct else "sh"):
            fail(f"{name}: recorded {recorded}")
        if json.loads(cmd_sh).get("exec") != "sh":
            fail(f"{name}_sh: recorded {cmd_sh}")
        if code != code_sh:
            fail(f"{name}: exit {code} directly, {code_sh} through sh ({message})")
        if name.startswith("env"):
            direct_env, shell_env = env_of(name), env_of(name + "_sh")
            if direct_env != shell_env:
                diff = {k: (direct_env.get(k), shell_env.get(k))
                        for k in set(direct_env) | set(shell_env)
                        if direct_env.get(k) != shell_env.get(k)}
                fail(f"{name}: the environment differs (direct, sh): {diff}")
            if direct_env.get("PWD") != project:
                fail(f"{name}: PWD is {direct_env.get('PWD')!r}, not the working folder")
        elif name in ("missing", "not_exec"):
            want = 127 if name == "missing" else 126
            if code != want:
                fail(f"{name}: exit {code}, want {want}")
            program = command.split()[0]
            for task in (name, name + "_sh"):
                if program not in log(task):
                    fail(f"{task}: the log does not name {program}: {log(task)!r}")
        else:
            if log(name) != log(name + "_sh"):
                fail(f"{name}: logs differ: {log(name)!r} vs {log(name + '_sh')!r}")
    if rows["ls_missing"][0] == 0 or rows["no_shebang"][0] != 0:
        fail(f"unexpected exit codes: {rows['ls_missing'][0]}, {rows['no_shebang'][0]}")
    if log("no_shebang").strip() != "script args: one two":
        fail(f"no_shebang: {log('no_shebang')!r}")
    if log("tabs").strip() != "['x', 'y']":
        fail(f"tabs: {log('tabs')!r}")
    for name in SHELL_ONLY:
        recorded = json.loads(rows["only_" + name][1])
        if recorded.get("exec") != "sh" or not recorded.get("why_shell"):
            fail(f"only_{name}: recorded {recorded}")
    print(f"shell_exec: {len(CASES)} cases agree run directly and through sh; "
          f"{len(SHELL_ONLY)} strings with shell syntax went through sh")
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
