#!/usr/bin/env python3
"""Fails when a component reaches a component it must not (docs/architecture.md).

Dependencies point one way: common <- dag; common <- storage_adapters;
scheduler uses dag and storage_adapters; rpc is the bottom of the wire;
worker uses storage_adapters and rpc; api uses the scheduler, the worker and
rpc; cli wires things together through api. Two things are checked, for every
source file and every CMake target of each folder:
  - each `#include "FOLDER/..."` names a folder the including folder may use;
  - each `tierflow_*` library a folder's CMakeLists.txt links belongs to a
    folder it may use.
Usage: layering_test.py REPO_ROOT
"""

import pathlib
import re
import sys
import tempfile

# Folder -> the folders of ours it may include (itself implied).
ALLOWED = {
    "common": set(),
    "dag": {"common"},
    "storage_adapters": {"common"},
    "scheduler": {"common", "dag", "storage_adapters"},
    "rpc": {"common"},
    "worker": {"common", "storage_adapters", "rpc"},
    "api": {"common", "dag", "storage_adapters", "scheduler", "worker", "rpc"},
    "cli": {"common", "api", "ui"},
}
OURS = set(ALLOWED) | {"ui", "sdk", "tests", "bench"}

# Library target -> the folder it is built from, read from every
# CMakeLists.txt's add_library (so a renamed or new target is seen).
ADD_LIBRARY = re.compile(r"add_library\(\s*(tierflow_\w+)")
LINK = re.compile(r"target_link_libraries\(\s*(\w+)([^)]*)\)", re.S)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/', re.M)


def target_folders(root):
    owner = {}
    for cmake in root.glob("*/**/CMakeLists.txt"):
        folder = cmake.relative_to(root).parts[0]
        for name in ADD_LIBRARY.findall(cmake.read_text()):
            owner[name] = folder
    return owner


def check(root):
    """Every violation under `root`, as 'file:line: what' lines."""
    problems = []
    for folder, allowed in ALLOWED.items():
        base = root / folder
        if not base.is_dir():
            continue
        may = allowed | {folder}
        for path in sorted(base.rglob("*")):
            if path.suffix not in (".h", ".cc") or not path.is_file():
                continue
            text = path.read_text(errors="replace")
            for match in INCLUDE.finditer(text):
                used = match.group(1)
                if used in OURS and used not in may:
                    line = text.count("\n", 0, match.start()) + 1
                    problems.append(f"{path.relative_to(root)}:{line}: includes {used}/, "
                                    f"but {folder}/ may use only {sorted(may)}")
    owner = target_folders(root)
    for folder, allowed in ALLOWED.items():
        cmake = root / folder / "CMakeLists.txt"
        if not cmake.is_file():
            continue
        may = allowed | {folder}
        text = cmake.read_text()
        for match in LINK.finditer(text):
            for library in re.findall(r"\btierflow_\w+", match.group(2)):
                used = owner.get(library)
                if used is not None and used not in may:
                    line = text.count("\n", 0, match.start()) + 1
                    problems.append(f"{cmake.relative_to(root)}:{line}: {match.group(1)} links "
                                    f"{library} ({used}/), but {folder}/ may use only "
                                    f"{sorted(may)}")
    return problems


def self_check():
    """The check finds an include and a link it must refuse, in a tree made
    for it (so a broken pattern cannot pass the real tree vacuously)."""
    with tempfile.TemporaryDirectory(prefix="tierflow-layering.") as temp:
        root = pathlib.Path(temp)
        for folder, name, text in [
                ("scheduler", "x.cc", '#include "api/cluster.h"\n#include "dag/graph.h"\n'),
                ("dag", "CMakeLists.txt", "add_library(tierflow_dag a.cc)\n"),
                ("storage_adapters", "CMakeLists.txt",
                 "add_library(tierflow_storage a.cc)\n"
                 "target_link_libraries(tierflow_storage PRIVATE tierflow_dag)\n")]:
            (root / folder).mkdir(exist_ok=True)
            (root / folder / name).write_text(text)
        found = check(root)
        expected = ["scheduler/x.cc:1: includes api/", "storage_adapters/CMakeLists.txt:2: "
                    "tierflow_storage links tierflow_dag"]
        if len(found) != 2 or not all(f.startswith(e) for f, e in zip(sorted(found), expected)):
            print("self-check failed: expected two violations, got:", *found, sep="\n  ")
            return False
    return True


def main():
    if not self_check():
        return 1
    problems = check(pathlib.Path(sys.argv[1]).resolve())
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} layering violation(s); the rules are in docs/architecture.md")
        return 1
    print(f"layering: {len(ALLOWED)} folders checked, no violations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
