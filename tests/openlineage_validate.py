#!/usr/bin/env python3
"""Validates OpenLineage events (NDJSON) against the spec files, offline.

Usage: openlineage_validate.py SPEC_DIR FACET_SCHEMA... -- EVENTS.ndjson...

SPEC_DIR is ../shared/openlineage (OpenLineage.json 2-0-2 and facets/*.json);
each FACET_SCHEMA is one of tierflow's own facet schemas (docs/openlineage/).
Every schema is registered under its $id, so the spec's $ref URLs resolve to
the local files and nothing is fetched. Each event must be a valid RunEvent;
each facet (run, job, dataset, input and output facets) must name a
registered schema in its _schemaURL, validate against that definition, and
be stored under the key the schema file declares for it. Exits 1 naming the
file, line and facet of the first problem; prints the number of events.
"""
import glob
import json
import os
import re
import sys

import jsonschema
from referencing import Registry, Resource

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def load_registry(spec_dir, extra):
    schemas = {}
    files = [os.path.join(spec_dir, "OpenLineage.json")]
    files += sorted(glob.glob(os.path.join(spec_dir, "facets", "*.json")))
    files += extra
    for path in files:
        with open(path) as f:
            schema = json.load(f)
        schemas[schema["$id"]] = schema
    registry = Registry().with_resources(
        (uri, Resource.from_contents(schema)) for uri, schema in schemas.items())
    return schemas, registry


def validator(registry, ref):
    return jsonschema.Draft202012Validator(
        {"$ref": ref}, registry=registry, format_checker=jsonschema.FormatChecker())


def facets_of(event):
    """(where, key, facet) for every facet of the event."""
    for kind in ("run", "job"):
        for key, facet in event.get(kind, {}).get("facets", {}).items():
            yield f"{kind}.facets.{key}", key, facet
    for side in ("inputs", "outputs"):
        for i, dataset in enumerate(event.get(side, [])):
            for group in ("facets", "inputFacets", "outputFacets"):
                for key, facet in dataset.get(group, {}).items():
                    yield f"{side}[{i}].{group}.{key}", key, facet


def main(argv):
    if "--" not in argv:
        sys.exit(__doc__)
    split = argv.index("--")
    spec_dir, extra, event_files = argv[1], argv[2:split], argv[split + 1:]
    schemas, registry = load_registry(spec_dir, extra)
    main_id = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
    run_event = validator(registry, main_id + "#/$defs/RunEvent")
    checked = 0
    for path in event_files:
        with open(path) as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for number, line in enumerate(lines, 1):
            where = f"{path}:{number}"
            try:
                event = json.loads(line)
            except json.JSONDecodeError as error:
                sys.exit(f"{where}: not JSON: {error}")
            try:
                run_event.validate(event)
            except jsonschema.ValidationError as error:
                sys.exit(f"{where}: not a valid RunEvent: {error.message} at "
                         f"{'/'.join(map(str, error.absolute_path))}")
            if event["schemaURL"] != main_id + "#/$defs/RunEvent":
                sys.exit(f"{where}: schemaURL {event['schemaURL']}")
            if not UUID.match(event["run"]["runId"]):
                sys.exit(f"{where}: runId {event['run']['runId']} is not a UUID")
            if not TIME.match(event["eventTime"]):
                sys.exit(f"{where}: eventTime {event['eventTime']} is not UTC with milliseconds")
            for name, key, facet in facets_of(event):
                url = facet.get("_schemaURL", "")
                base = url.split("#", 1)[0]
                if base not in schemas:
                    sys.exit(f"{where}: {name}: _schemaURL {url!r} is not a known schema")
                if key not in schemas[base].get("properties", {}):
                    sys.exit(f"{where}: {name}: {base} declares no facet '{key}'")
                if facet.get("_producer") != event["producer"]:
                    sys.exit(f"{where}: {name}: _producer {facet.get('_producer')!r}")
                try:
                    validator(registry, url).validate(facet)
                    validator(registry, base).validate({key: facet})
                except jsonschema.ValidationError as error:
                    sys.exit(f"{where}: {name}: {error.message}")
            checked += 1
    print(f"{checked} events valid")


if __name__ == "__main__":
    main(sys.argv)
