#!/usr/bin/env python3
"""Checks docs/pipeline.schema.json against the pipelines we know.

Usage: schema_test.py SOURCE_DIR [--valid-dir DIR]... [--tierflow PATH]

Must validate:
  - the schema itself, against the draft-07 meta-schema;
  - tests/schema/valid/*.yaml, tests/pipelines/valid/*.yaml,
    examples/**/pipeline.yaml, every --valid-dir DIR/*.yaml;
  - every ```yaml block of docs/pipeline-format.md and README.md that is a
    whole pipeline (has a top-level `stages:`).
Must NOT validate:
  - tests/schema/invalid/*.yaml, each at the place its first line names:
    `# expect-error-at: stages.clean.kind` (`<root>` for the top level,
    `<yaml>` for a file YAML itself rejects, such as a duplicate key);
  - tests/pipelines/invalid/*.yaml (the loader's error corpus), except the
    files in NOT_SCHEMA_LEVEL, whose problem a JSON Schema cannot express.

With --tierflow, `tierflow validate` must agree with the schema on
tests/schema/ and the examples: exit 0 for the valid files, 1 for the
invalid ones (it finds more errors than a schema can, never fewer).

YAML is read the way editors read it (YAML 1.2 core: only true/false are
booleans, no timestamps) and duplicate keys are errors, as in the loader.

Uses Debian's python3-jsonschema and python3-yaml (scripts/bootstrap.sh).
"""

import glob
import json
import os
import re
import subprocess
import sys

try:
    import jsonschema
    import yaml
except ImportError:
    # A python3 earlier on PATH (pyenv, a venv) may lack Debian's modules:
    # run again under Debian's interpreter, once.
    debian_python = "/usr/bin/python3"
    if os.environ.get("TIERFLOW_SCHEMA_TEST_REEXEC") or not os.path.exists(debian_python):
        raise
    os.environ["TIERFLOW_SCHEMA_TEST_REEXEC"] = "1"
    os.execv(debian_python, [debian_python] + sys.argv)

# Files of tests/pipelines/invalid/ that are valid as far as a schema can
# tell: their error needs the whole document (references, cycles, case
# clashes, params used in templates) or the loader's value checks.
# name -> why the schema cannot catch it.
NOT_SCHEMA_LEVEL = {
    "case_collision.yaml": "names that differ only in case (JSON Schema compares exactly)",
    "cycle.yaml": "a dependency cycle through needs",
    "cycle_inputs.yaml": "dependency cycles through inputs",
    "self_reference.yaml": "a stage naming itself in needs and inputs",
    "mapping_each.yaml": "item-wise inputs whose stages have other items (the items of other stages)",
    "unknown_output.yaml": "references to outputs another stage does not declare",
    "unknown_stage_ref.yaml": "references to stages that do not exist",
}


class Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core booleans, no timestamps, and errors on
    duplicate keys."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, "duplicate key %r" % (key,), key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
Loader.add_constructor(_BOOL, lambda loader, node: loader.construct_scalar(node).lower() == "true")


def path_of(error):
    return ".".join(str(p) for p in error.absolute_path) or "<root>"


def all_errors(errors):
    """Errors with the sub-errors of anyOf/oneOf branches, depth first."""
    for e in errors:
        yield e
        yield from all_errors(e.context or [])


class Text(str):
    """YAML given as text (a block of a document), not as a file path."""


def load(source):
    if isinstance(source, Text):
        return yaml.load(source, Loader=Loader)
    with open(source, encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)


class Checker:
    def __init__(self, root):
        self.root = root
        with open(os.path.join(root, "docs", "pipeline.schema.json"), encoding="utf-8") as f:
            schema = json.load(f)
        jsonschema.Draft7Validator.check_schema(schema)
        self.validator = jsonschema.Draft7Validator(schema)
        self.failures = []
        self.checked = 0

    def rel(self, path):
        return os.path.relpath(path, self.root)

    def fail(self, name, message):
        self.failures.append("%s: %s" % (name, message))
        print("FAIL %s: %s" % (name, message))

    def errors(self, source):
        """(yaml error or None, schema errors) of a file path or a Text."""
        try:
            document = load(source)
        except yaml.YAMLError as e:
            return str(e).replace("\n", " "), []
        return None, sorted(self.validator.iter_errors(document), key=lambda e: e.path)

    def expect_tierflow(self, tierflow, path, valid):
        """`tierflow validate` exits 0 for a valid file, 1 for an invalid one."""
        self.checked += 1
        name = "tierflow validate " + self.rel(path)
        run = subprocess.run([tierflow, "validate", path], capture_output=True, text=True)
        want = 0 if valid else 1
        if run.returncode != want:
            self.fail(name, "exit %d, expected %d: %s" % (
                run.returncode, want, (run.stderr or run.stdout).strip()[:300]))
        else:
            print("ok   %s: exit %d" % (name, want))

    def expect_valid(self, name, source):
        self.checked += 1
        yaml_error, errors = self.errors(source)
        if yaml_error:
            self.fail(name, "YAML error: " + yaml_error)
        elif errors:
            self.fail(name, "; ".join("%s: %s" % (path_of(e), e.message) for e in errors))
        else:
            print("ok   %s valid" % name)

    def expect_invalid(self, name, source, at=None):
        """at: the path one of the errors must be at, or None for anywhere."""
        self.checked += 1
        yaml_error, errors = self.errors(source)
        if yaml_error:
            if at in (None, "<yaml>"):
                print("ok   %s rejected: YAML error: %s" % (name, yaml_error[:80]))
            else:
                self.fail(name, "expected a schema error at %s, got YAML error: %s" % (at, yaml_error))
            return
        if not errors:
            self.fail(name, "validates, but must not" + (" (expected error at %s)" % at if at else ""))
            return
        paths = [path_of(e) for e in all_errors(errors)]
        if at is not None and at not in paths:
            self.fail(name, "expected an error at %s, got errors at %s" % (at, sorted(set(paths))))
            return
        print("ok   %s rejected at %s" % (name, at or path_of(errors[0])))


def expected_location(path):
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    m = re.match(r"#\s*expect-error-at:\s*(\S+)", first)
    return m.group(1) if m else None


def doc_pipelines(path):
    """Whole pipelines (```yaml blocks with a top-level `stages:`) in a document."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return [(i, b) for i, b in enumerate(blocks) if re.search(r"^stages:", b, re.M)]


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    root = os.path.abspath(argv[1])
    extra_valid_dirs = []
    tierflow = None
    args = argv[2:]
    while args:
        if args[0] == "--valid-dir" and len(args) > 1:
            extra_valid_dirs.append(args[1])
            args = args[2:]
        elif args[0] == "--tierflow" and len(args) > 1:
            tierflow = os.path.abspath(args[1])
            args = args[2:]
        else:
            print("unknown argument %r\n%s" % (args[0], __doc__))
            return 2

    c = Checker(root)

    def files(pattern):
        return sorted(glob.glob(os.path.join(root, pattern), recursive=True))

    valid = (files("tests/schema/valid/*.yaml") + files("tests/pipelines/valid/*.yaml") +
             files("examples/**/pipeline.yaml"))
    for d in extra_valid_dirs:
        valid += sorted(glob.glob(os.path.join(os.path.abspath(d), "*.yaml")))
    for path in valid:
        c.expect_valid(c.rel(path), path)

    for doc in ("docs/pipeline-format.md", "README.md"):
        blocks = doc_pipelines(os.path.join(root, doc))
        if not blocks:
            c.fail(doc, "no whole-pipeline ```yaml block found")
        for i, block in blocks:
            c.expect_valid("%s yaml block %d" % (doc, i + 1), Text(block))

    own_invalid = files("tests/schema/invalid/*.yaml")
    if not own_invalid:
        c.fail("tests/schema/invalid", "no fixtures found")
    for path in own_invalid:
        at = expected_location(path)
        if at is None:
            c.fail(c.rel(path), "first line must be '# expect-error-at: PATH'")
            continue
        c.expect_invalid(c.rel(path), path, at)

    shared_invalid = files("tests/pipelines/invalid/*.yaml")
    names = {os.path.basename(p) for p in shared_invalid}
    for path in shared_invalid:
        name = os.path.basename(path)
        if name in NOT_SCHEMA_LEVEL:
            yaml_error, errors = c.errors(path)
            if yaml_error or errors:
                c.fail(c.rel(path), "listed in NOT_SCHEMA_LEVEL but the schema rejects it: "
                       "remove it from the list")
            else:
                print("skip %s: %s" % (c.rel(path), NOT_SCHEMA_LEVEL[name]))
            continue
        c.expect_invalid(c.rel(path), path)
    if tierflow:
        for path in files("tests/schema/valid/*.yaml") + files("examples/**/pipeline.yaml"):
            c.expect_tierflow(tierflow, path, valid=True)
        for path in own_invalid:
            c.expect_tierflow(tierflow, path, valid=False)

    for name in sorted(set(NOT_SCHEMA_LEVEL) - names):
        if shared_invalid:
            print("note NOT_SCHEMA_LEVEL lists %s, which tests/pipelines/invalid/ lacks" % name)

    print("\n%d files checked, %d failures" % (c.checked, len(c.failures)))
    for f in c.failures:
        print("  " + f)
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
