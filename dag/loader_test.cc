#include "dag/loader.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace tierflow::dag {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

// The report `tierflow validate` would print, one diagnostic per line; ""
// when the pipeline loads.
std::string Report(std::string_view yaml, const LoadOptions& options = {}) {
  auto pipeline = LoadPipelineText(yaml, "p.yaml", options);
  return pipeline.ok() ? "" : std::string(pipeline.status().message());
}

Pipeline MustLoad(std::string_view yaml, const LoadOptions& options = {}) {
  auto pipeline = LoadPipelineText(yaml, "p.yaml", options);
  EXPECT_TRUE(pipeline.ok()) << pipeline.status();
  return pipeline.ok() ? *std::move(pipeline) : Pipeline{};
}

LoadOptions Params(std::map<std::string, std::string> overrides) {
  LoadOptions options;
  options.param_overrides = std::move(overrides);
  return options;
}

// --- What a valid file becomes -------------------------------------------

TEST(LoaderTest, ReadsEveryFieldOfAStage) {
  Pipeline p = MustLoad(R"(name: full
description: all fields
stages:
  src:
    run: ["src"]
    outputs: [raw]
  train:
    kind: train
    description: trains
    run: ["python3", "train.py"]
    needs: [src]
    inputs:
      data: {from: src.raw, stream: true}
      again: src.raw
    outputs:
      model: {size: 2GiB, durability: archive}
      log: 10MB
      note:
    resources: {cpus: 2.5, memory: 4GiB, gpus: 1}
    retries: {limit: 3, backoff: 5s, factor: 1.5, max_backoff: 1m}
    timeout: 2h30m
    cache: false
    tier: nvme
    checkpoints: {keep: 5, tier: s3}
    env: {OMP_NUM_THREADS: 4, MODE: fast}
)");
  EXPECT_EQ(p.file, "p.yaml");
  EXPECT_EQ(p.name, "full");
  EXPECT_EQ(p.description, "all fields");
  ASSERT_EQ(p.stages.size(), 2u);
  const Stage& s = p.stages[1];
  EXPECT_EQ(s.name, "train");
  EXPECT_EQ(s.location.line, 7);
  EXPECT_EQ(s.location.column, 3);
  EXPECT_EQ(s.kind, StageKind::kTrain);
  EXPECT_EQ(s.description, "trains");
  EXPECT_EQ(s.run.argv, (std::vector<std::string>{"python3", "train.py"}));
  EXPECT_FALSE(s.run.is_shell());
  EXPECT_EQ(s.needs, (std::vector<std::string>{"src"}));
  ASSERT_EQ(s.inputs.size(), 2u);
  EXPECT_EQ(s.inputs[0].name, "data");
  EXPECT_EQ(s.inputs[0].stage, "src");
  EXPECT_EQ(s.inputs[0].output, "raw");
  EXPECT_TRUE(s.inputs[0].stream);
  EXPECT_EQ(s.inputs[0].location.line, 13);
  EXPECT_EQ(s.inputs[0].location.column, 20);
  EXPECT_FALSE(s.inputs[1].stream);
  ASSERT_EQ(s.outputs.size(), 3u);
  EXPECT_EQ(s.outputs[0].name, "model");
  EXPECT_EQ(s.outputs[0].size_hint, 2ull << 30);
  EXPECT_EQ(s.outputs[0].durability, Durability::kArchive);
  EXPECT_EQ(s.outputs[1].size_hint, 10'000'000u);
  EXPECT_EQ(s.outputs[1].durability, std::nullopt);
  EXPECT_EQ(s.outputs[2].size_hint, 0u);
  EXPECT_EQ(s.resources.cpus, 2.5);
  EXPECT_EQ(s.resources.memory, 4ull << 30);
  EXPECT_EQ(s.resources.gpus, 1u);
  EXPECT_EQ(s.retries.limit, 3u);
  EXPECT_EQ(s.retries.backoff, seconds(5));
  EXPECT_EQ(s.retries.factor, 1.5);
  EXPECT_EQ(s.retries.max_backoff, minutes(1));
  EXPECT_EQ(s.timeout, hours(2) + minutes(30));
  EXPECT_FALSE(s.cache);
  EXPECT_EQ(s.tier, "nvme");
  EXPECT_TRUE(s.checkpoints.enabled);
  EXPECT_EQ(s.checkpoints.keep, 5u);
  EXPECT_EQ(s.checkpoints.tier, "s3");
  EXPECT_EQ(s.env,
            (std::map<std::string, std::string>{{"MODE", "fast"}, {"OMP_NUM_THREADS", "4"}}));
}

TEST(LoaderTest, LeavesUnsetFieldsAtTheirDefaults) {
  Pipeline p = MustLoad("name: p\nstages:\n  a:\n    run: echo hi\n");
  const Stage& s = p.stages[0];
  EXPECT_EQ(s.kind, StageKind::kGeneric);
  EXPECT_TRUE(s.run.is_shell());
  EXPECT_EQ(s.run.shell, "echo hi");
  EXPECT_EQ(s.io, DefaultIoProfile(StageKind::kGeneric));
  EXPECT_EQ(s.resources.cpus, 1);
  EXPECT_EQ(s.resources.memory, 0u);
  EXPECT_EQ(s.retries.limit, 0u);
  EXPECT_EQ(s.retries.backoff, seconds(10));
  EXPECT_EQ(s.timeout, std::nullopt);
  EXPECT_EQ(s.foreach, std::nullopt);
  EXPECT_TRUE(s.cache);
  EXPECT_FALSE(s.checkpoints.enabled);
  EXPECT_TRUE(s.env.empty());
}

TEST(LoaderTest, OverridesSingleFieldsOfTheKindsIoProfile) {
  Pipeline p = MustLoad(R"(name: p
stages:
  a:
    kind: train
    run: ["t"]
    io: {read: sequential, block_size: 1MiB, read_bytes: 10GiB, write_bytes: 1GB, read_passes: 3, streams: 2, durability: volatile}
  b:
    kind: clean
    run: ["c"]
    io: {write: none}
)");
  IoProfile a = DefaultIoProfile(StageKind::kTrain);
  a.read = AccessPattern::kSequential;
  a.block_size = 1 << 20;
  a.read_bytes = 10ull << 30;
  a.write_bytes = 1'000'000'000;
  a.read_passes = 3;
  a.streams = 2;
  a.durability = Durability::kVolatile;
  EXPECT_EQ(p.stages[0].io, a);
  IoProfile b = DefaultIoProfile(StageKind::kClean);
  b.write = AccessPattern::kNone;
  EXPECT_EQ(p.stages[1].io, b);
}

TEST(LoaderTest, AppliesDefaultsAsWholeValuesToStagesWithoutTheirOwn) {
  Pipeline p = MustLoad(R"(name: p
defaults:
  resources: {cpus: 4, memory: 1GiB}
  retries: 2
  timeout: 1h
  cache: false
stages:
  plain:
    run: ["a"]
  own:
    run: ["b"]
    resources: {gpus: 1}
    retries: {backoff: 1s}
    timeout: 5m
    cache: true
)");
  const Stage& plain = p.stages[0];
  EXPECT_EQ(plain.resources.cpus, 4);
  EXPECT_EQ(plain.resources.memory, 1ull << 30);
  EXPECT_EQ(plain.retries.limit, 2u);
  EXPECT_EQ(plain.timeout, hours(1));
  EXPECT_FALSE(plain.cache);
  const Stage& own = p.stages[1];
  // Not merged: the stage's resources have no memory and one cpu.
  EXPECT_EQ(own.resources.cpus, 1);
  EXPECT_EQ(own.resources.memory, 0u);
  EXPECT_EQ(own.resources.gpus, 1u);
  EXPECT_EQ(own.retries.limit, 0u);
  EXPECT_EQ(own.retries.backoff, seconds(1));
  EXPECT_EQ(own.timeout, minutes(5));
  EXPECT_TRUE(own.cache);
}

TEST(LoaderTest, CacheDefaultsToOffForIngestOnly) {
  Pipeline p = MustLoad(R"(name: p
stages:
  fetch: {kind: ingest, run: ["f"]}
  fetch_cached: {kind: ingest, run: ["f"], cache: true}
  clean: {kind: clean, run: ["c"]}
)");
  EXPECT_FALSE(p.stages[0].cache);
  EXPECT_TRUE(p.stages[1].cache);
  EXPECT_TRUE(p.stages[2].cache);
  Pipeline with_default = MustLoad(
      "name: p\ndefaults: {cache: true}\nstages:\n"
      "  fetch: {kind: ingest, run: [\"f\"]}\n");
  EXPECT_TRUE(with_default.stages[0].cache);
}

TEST(LoaderTest, CheckpointsAcceptABoolOrAMap) {
  Pipeline p = MustLoad(R"(name: p
stages:
  on: {run: ["a"], checkpoints: true}
  off: {run: ["a"], checkpoints: false}
  map: {run: ["a"], checkpoints: {}}
)");
  EXPECT_TRUE(p.stages[0].checkpoints.enabled);
  EXPECT_EQ(p.stages[0].checkpoints.keep, 3u);
  EXPECT_FALSE(p.stages[1].checkpoints.enabled);
  EXPECT_TRUE(p.stages[2].checkpoints.enabled);
}

// --- Params ----------------------------------------------------------------

TEST(LoaderTest, TypesShorthandParamsFromHowTheValueIsWritten) {
  Pipeline p = MustLoad(R"(name: p
params:
  epochs: 3
  lr: 0.001
  debug: True
  model: resnet50
  quoted: "3"
  regions: [eu, us]
stages:
  a: {run: ["a"]}
)");
  ASSERT_EQ(p.params.size(), 6u);
  auto expect = [&](const char* name, ParamType type, const char* value) {
    const Param* param = p.FindParam(name);
    ASSERT_NE(param, nullptr) << name;
    EXPECT_EQ(param->type, type) << name;
    EXPECT_EQ(param->value, value) << name;
  };
  expect("epochs", ParamType::kInt, "3");
  expect("lr", ParamType::kFloat, "0.001");
  expect("debug", ParamType::kBool, "true");
  expect("model", ParamType::kString, "resnet50");
  expect("quoted", ParamType::kString, "3");
  EXPECT_EQ(p.FindParam("regions")->type, ParamType::kList);
  EXPECT_EQ(p.FindParam("regions")->items, (std::vector<std::string>{"eu", "us"}));
  EXPECT_EQ(p.params[0].location.line, 3);
}

TEST(LoaderTest, NormalisesTypedParamValuesToCanonicalText) {
  Pipeline p = MustLoad(R"(name: p
params:
  a: {type: int, default: +007}
  b: {type: float, default: 1.50}
  c: {type: float, default: 2}
  d: {type: bool, default: FALSE}
  e: {type: string, default: 1.50, description: text stays text}
stages:
  x: {run: ["x"]}
)");
  EXPECT_EQ(p.FindParam("a")->value, "7");
  EXPECT_EQ(p.FindParam("b")->value, "1.5");
  EXPECT_EQ(p.FindParam("c")->value, "2");
  EXPECT_EQ(p.FindParam("d")->value, "false");
  EXPECT_EQ(p.FindParam("e")->value, "1.50");
  EXPECT_EQ(p.FindParam("e")->description, "text stays text");
}

TEST(LoaderTest, AppliesParamOverridesCheckedAgainstTheType) {
  Pipeline p = MustLoad(R"(name: p
params:
  epochs: 3
  lr: 0.1
  regions: [eu]
  model: small
stages:
  x: {run: ["x"]}
)",
                        Params({{"epochs", "10"}, {"lr", "1e-3"}, {"regions", "eu, us,ap"}}));
  EXPECT_EQ(p.FindParam("epochs")->value, "10");
  EXPECT_TRUE(p.FindParam("epochs")->overridden);
  EXPECT_EQ(p.FindParam("lr")->value, "0.001");
  EXPECT_EQ(p.FindParam("regions")->items, (std::vector<std::string>{"eu", "us", "ap"}));
  EXPECT_FALSE(p.FindParam("model")->overridden);
}

TEST(LoaderTest, ReportsUnknownAndBadlyTypedParamOverrides) {
  const std::string yaml = "name: p\nparams: {epochs: 3}\nstages:\n  x: {run: [\"x\"]}\n";
  EXPECT_EQ(Report(yaml, Params({{"epocs", "3"}})),
            "--param: epocs: unknown param 'epocs' (did you mean 'epochs'?)");
  EXPECT_EQ(Report(yaml, Params({{"epochs", "three"}})),
            "--param: epochs: invalid int 'three' for param 'epochs'");
}

TEST(LoaderTest, TypedParamWithoutDefaultMustBeGivenWithParam) {
  const std::string yaml = R"(name: p
params:
  shards: {type: int}
stages:
  x: {run: ["x", "{{ params.shards }}"], foreach: {range: [0, "{{ params.shards }}"]}}
)";
  EXPECT_EQ(Report(yaml),
            "p.yaml:3:3: params.shards: param 'shards' has no default: pass --param shards=VALUE");
  Pipeline p = MustLoad(yaml, Params({{"shards", "2"}}));
  EXPECT_EQ(p.stages[0].foreach, (std::vector<std::string>{"0", "1"}));
}

// --- foreach ---------------------------------------------------------------

TEST(LoaderTest, ExpandsRangesWithPythonSemantics) {
  Pipeline p = MustLoad(R"(name: p
params: {n: 3}
stages:
  up: {run: ["x"], foreach: {range: [0, 10, 3]}}
  down: {run: ["x"], foreach: {range: [5, 0, -2]}}
  negative: {run: ["x"], foreach: {range: [-2, 1]}}
  param: {run: ["x"], foreach: {range: ["{{ params.n }}", 5]}}
)");
  using Items = std::vector<std::string>;
  EXPECT_EQ(p.stages[0].foreach, (Items{"0", "3", "6", "9"}));
  EXPECT_EQ(p.stages[1].foreach, (Items{"5", "3", "1"}));
  EXPECT_EQ(p.stages[2].foreach, (Items{"-2", "-1", "0"}));
  EXPECT_EQ(p.stages[3].foreach, (Items{"3", "4"}));
}

TEST(LoaderTest, HandlesRangesAtTheLimitsOfInt64WithoutOverflow) {
  Pipeline p = MustLoad(R"(name: p
stages:
  top: {run: ["x"], foreach: {range: [9223372036854775806, 9223372036854775807]}}
  bottom: {run: ["x"], foreach: {range: [-9223372036854775807, -9223372036854775808, -1]}}
)");
  EXPECT_EQ(p.stages[0].foreach, (std::vector<std::string>{"9223372036854775806"}));
  EXPECT_EQ(p.stages[1].foreach, (std::vector<std::string>{"-9223372036854775807"}));
  Pipeline wide = MustLoad(
      "name: p\nstages:\n  a: {run: [x], foreach: {range: [-9223372036854775808, "
      "9223372036854775807, 4611686018427387904]}}\n");
  EXPECT_EQ(wide.stages[0].foreach,
            (std::vector<std::string>{"-9223372036854775808", "-4611686018427387904", "0",
                                      "4611686018427387904"}));
}

TEST(LoaderTest, ExpandsAListParamAfterItsOverride) {
  const std::string yaml = R"(name: p
params:
  regions: [eu, us]
stages:
  shard: {run: ["x", "{{ item }}"], foreach: "{{ params.regions }}"}
)";
  EXPECT_EQ(MustLoad(yaml).stages[0].foreach, (std::vector<std::string>{"eu", "us"}));
  EXPECT_EQ(MustLoad(yaml, Params({{"regions", "ap,sa,af"}})).stages[0].foreach,
            (std::vector<std::string>{"ap", "sa", "af"}));
  EXPECT_EQ(Report(yaml, Params({{"regions", ""}})),
            "p.yaml:5:46: stages.shard.foreach: no items: a foreach stage needs at least one");
}

TEST(LoaderTest, KeepsListItemsAsWritten) {
  EXPECT_EQ(MustLoad("name: p\nstages:\n  a: {run: [x], foreach: [1, 1.0, \"x y\", a b]}\n")
                .stages[0]
                .foreach,
            (std::vector<std::string>{"1", "1.0", "x y", "a b"}));
}

TEST(LoaderTest, RejectsRepeatedItemsHoweverQuoted) {
  EXPECT_EQ(Report("name: p\nstages:\n  a: {run: [x], foreach: [1, \"1\"]}\n"),
            "p.yaml:3:30: stages.a.foreach[1]: duplicate item '1' (first at line 3): task ids "
            "must be unique");
}

TEST(LoaderTest, RejectsForeachBeyondAMillionItems) {
  EXPECT_EQ(Report("name: p\nstages:\n  a: {run: [x], foreach: {range: [0, 1000001]}}\n"),
            "p.yaml:3:34: stages.a.foreach.range: 1000001 items: a foreach stage may have at most "
            "1000000");
  EXPECT_EQ(MustLoad("name: p\nstages:\n  a: {run: [x], foreach: {range: [0, 1000000]}}\n")
                .stages[0]
                .TaskCount(),
            1'000'000u);
}

// --- Errors ----------------------------------------------------------------

TEST(LoaderTest, ReportsEveryUnknownKeyWithSuggestion) {
  EXPECT_EQ(Report(R"(name: p
stges: {}
stages:
  clean:
    kynd: clean
    run: ["c"]
    resources: {cpu: 2}
    flavour: vanilla
)"),
            "p.yaml:2:1: stges: unknown key 'stges' (did you mean 'stages'?)\n"
            "p.yaml:5:5: stages.clean.kynd: unknown key 'kynd' (did you mean 'kind'?)\n"
            "p.yaml:7:17: stages.clean.resources.cpu: unknown key 'cpu' (did you mean 'cpus'?)\n"
            "p.yaml:8:5: stages.clean.flavour: unknown key 'flavour'");
}

TEST(LoaderTest, SuggestsAKeyWithTwoLettersSwapped) {
  EXPECT_EQ(Report("name: p\nstages:\n  a: {run: [x], kind: trian}\n"),
            "p.yaml:3:23: stages.a.kind: unknown kind 'trian' (did you mean 'train'?)");
}

TEST(LoaderTest, DoesNotReportAMissingKeyThatWasMisspelt) {
  EXPECT_EQ(Report("name: p\nstages:\n  a: {rnu: [x]}\n"),
            "p.yaml:3:7: stages.a.rnu: unknown key 'rnu' (did you mean 'run'?)");
  EXPECT_EQ(Report("name: p\nstages:\n  a: {kind: clean}\n"),
            "p.yaml:3:6: stages.a: missing required key 'run'");
}

TEST(LoaderTest, ReportsWrongYamlTypes) {
  EXPECT_EQ(Report(R"(name: p
stages:
  a:
    run: {x: y}
    needs: b
    resources: {gpus: abc}
    env: [A]
)"),
            "p.yaml:4:10: stages.a.run: expected a list of strings (argv) or a string (shell "
            "script), got a map\n"
            "p.yaml:5:12: stages.a.needs: expected a list of stage names, got 'b'\n"
            "p.yaml:6:23: stages.a.resources.gpus: expected an integer, got 'abc'\n"
            "p.yaml:7:10: stages.a.env: expected a map, got a list");
}

TEST(LoaderTest, ReportsDuplicateStageWithTheLineOfTheFirst) {
  EXPECT_EQ(Report("name: p\nstages:\n  a:\n    run: [x]\n  a:\n    run: [y]\n"),
            "p.yaml:5:3: stages.a: duplicate stage 'a' (first defined at line 3)");
}

TEST(LoaderTest, ReportsDuplicateKeysParamsInputsAndOutputs) {
  EXPECT_EQ(Report(R"(name: p
params: {n: 1, n: 2}
stages:
  a: {run: [x], outputs: [o, o]}
  b: {run: [x], run: [y], inputs: {i: a.o, i: a.o}}
)"),
            "p.yaml:2:16: params.n: duplicate param 'n' (first defined at line 2)\n"
            "p.yaml:4:30: stages.a.outputs[1]: duplicate output 'o' (first defined at line 4)\n"
            "p.yaml:5:17: stages.b.run: duplicate key 'run' (first defined at line 5)\n"
            "p.yaml:5:44: stages.b.inputs.i: duplicate input 'i' (first defined at line 5)");
}

TEST(LoaderTest, ReportsNamesDifferingOnlyInCase) {
  EXPECT_EQ(Report("name: p\nstages:\n  a: {run: [x], outputs: [model, Model]}\n"),
            "p.yaml:3:34: stages.a.outputs[1]: output 'Model' differs only in case from output "
            "'model' (line 3); both would be TIERFLOW_OUTPUT_MODEL");
}

TEST(LoaderTest, ReportsRepeatsAmongManyNames) {
  // Past a handful of names the loader hashes them instead of scanning:
  // repeats and case collisions are found all the same.
  // Built with += only: GCC 12 at -O3 reports a false -Wrestrict on
  // "literal" + std::string.
  std::string yaml = "name: p\nstages:\n  a: {run: [x], outputs: [";
  for (int i = 0; i < 12; ++i) (yaml += 'o') += std::to_string(i) += ", ";
  yaml += "o3, O11]}\n  b: {run: [x], inputs: {";
  for (int i = 0; i < 12; ++i) {
    (yaml += 'i') += std::to_string(i) += ": a.o";
    yaml += std::to_string(i) += ", ";
  }
  yaml += "I2: a.o1, i10: a.o2}}\n";
  EXPECT_EQ(Report(yaml),
            "p.yaml:3:77: stages.a.outputs[12]: duplicate output 'o3' (first defined at line 3)\n"
            "p.yaml:3:81: stages.a.outputs[13]: output 'O11' differs only in case from output "
            "'o11' (line 3); both would be TIERFLOW_OUTPUT_O11\n"
            "p.yaml:4:150: stages.b.inputs.I2: input 'I2' differs only in case from input 'i2' "
            "(line 4); both would be TIERFLOW_INPUT_I2\n"
            "p.yaml:4:160: stages.b.inputs.i10: duplicate input 'i10' (first defined at line 4)");
}

TEST(LoaderTest, ReportsUnknownStagesAndOutputsWithSuggestions) {
  EXPECT_EQ(Report(R"(name: p
stages:
  clean: {run: [x], outputs: [clean]}
  train:
    run: [y]
    needs: [claen]
    inputs:
      a: clen.clean
      b: clean.clen
      c: clean.weights
)"),
            "p.yaml:6:13: stages.train.needs[0]: unknown stage 'claen' (did you mean 'clean'?)\n"
            "p.yaml:8:10: stages.train.inputs.a: unknown stage 'clen' in 'clen.clean' (did you "
            "mean 'clean'?)\n"
            "p.yaml:9:10: stages.train.inputs.b: stage 'clean' has no output 'clen' (did you mean "
            "'clean'?)\n"
            "p.yaml:10:10: stages.train.inputs.c: stage 'clean' has no output 'weights' (its "
            "outputs: clean)");
}

TEST(LoaderTest, ReportsReferencesWithoutADotAndSelfReferences) {
  EXPECT_EQ(Report("name: p\nstages:\n  a: {run: [x], outputs: [o], needs: [a], inputs: {i: a}, "
                   "}\n  b: {run: [x], inputs: {i: {from: b.o}}, outputs: [o]}\n"),
            "p.yaml:3:39: stages.a.needs[0]: stage 'a' cannot depend on itself\n"
            "p.yaml:3:55: stages.a.inputs.i: invalid reference 'a': expected the form "
            "stage.output\n"
            "p.yaml:4:36: stages.b.inputs.i.from: stage 'b' cannot take input from itself");
}

TEST(LoaderTest, ReportsACycleAtTheDependencyThatClosesIt) {
  EXPECT_EQ(Report(R"(name: p
stages:
  a:
    run: [x]
    needs: [c]
  b:
    run: [x]
    needs: [a]
    outputs: [out]
  c:
    run: [x]
    inputs: {data: b.out}
)"),
            "p.yaml:5:13: stages.a.needs: dependency cycle: a -> b -> c -> a");
}

TEST(LoaderTest, ReportsACycleThroughAnInputAtThatInput) {
  EXPECT_EQ(Report(R"(name: p
stages:
  a: {run: [x], inputs: {back: b.out}, outputs: [out]}
  b: {run: [x], inputs: {fwd: a.out}, outputs: [out]}
)"),
            "p.yaml:3:32: stages.a.inputs.back: dependency cycle: a -> b -> a");
}

TEST(LoaderTest, LooksForCyclesOnlyOnceReferencesAreRight) {
  EXPECT_EQ(Report("name: p\nstages:\n  a: {run: [x], needs: [b]}\n"
                   "  b: {run: [x], needs: [a, nope]}\n"),
            "p.yaml:4:28: stages.b.needs[1]: unknown stage 'nope'");
}

TEST(LoaderTest, ShortensTheReportOfAVeryLongCycle) {
  std::string yaml = "name: p\nstages:\n";
  for (int i = 0; i < 100; ++i) {
    yaml += "  s" + std::to_string(i) + ": {run: [x], needs: [s" + std::to_string((i + 99) % 100) +
            "]}\n";
  }
  EXPECT_EQ(Report(yaml),
            "p.yaml:3:26: stages.s0.needs: dependency cycle: s0 -> s1 -> s2 -> s3 -> s4 -> s5 -> "
            "s6 -> s7 -> s8 -> s9 -> s10 -> s11 -> ... 77 more ... -> s89 -> s90 -> s91 -> s92 -> "
            "s93 -> s94 -> s95 -> s96 -> s97 -> s98 -> s99 -> s0");
}

TEST(LoaderTest, ValidatesArgvTemplatesWithoutSubstitutingThem) {
  Pipeline p = MustLoad(R"(name: p
params: {lr: 0.5}
stages:
  a: {run: ["train", "--lr={{params.lr}}", "{{ item }}"], foreach: [x]}
)");
  EXPECT_EQ(p.stages[0].run.argv,
            (std::vector<std::string>{"train", "--lr={{params.lr}}", "{{ item }}"}));
  EXPECT_EQ(Report(R"(name: p
params: {lr: 0.5}
stages:
  a: {run: ["train", "{{ params.rl }}", "{{ item }}", "{{ lr }}"]}
)"),
            "p.yaml:4:22: stages.a.run[1]: unknown param 'rl' in '{{ params.rl }}' (did you mean "
            "'lr'?)\n"
            "p.yaml:4:41: stages.a.run[2]: '{{ item }}' used in a stage without foreach\n"
            "p.yaml:4:55: stages.a.run[3]: unsupported template '{{ lr }}': expected '{{ "
            "params.NAME }}' or '{{ item }}'");
}

TEST(LoaderTest, RejectsTemplatesInShellCommandsNamingTheVariable) {
  EXPECT_EQ(
      Report("name: p\nparams: {lr: 1}\nstages:\n  a: {run: \"train --lr {{ params.lr }}\"}\n"),
      "p.yaml:4:12: stages.a.run: shell commands are not templated: use "
      "\"$TIERFLOW_PARAM_LR\" instead of '{{ params.lr }}', or give run as an argv list");
}

TEST(LoaderTest, ReportsSizesAndDurationsWithTheParserMessage) {
  EXPECT_EQ(Report("name: p\nstages:\n  a: {run: [x], timeout: 2x, resources: {memory: 1XB}}\n"),
            "p.yaml:3:26: stages.a.timeout: invalid duration '2x': expected a form such as 90s, "
            "2h30m, 1d or 500ms\n"
            "p.yaml:3:50: stages.a.resources.memory: invalid size '1XB': expected a number and a "
            "unit such as 512MiB, 10GiB or 2TB");
}

TEST(LoaderTest, ListsTheKindsWhenNoneIsClose) {
  EXPECT_EQ(Report("name: p\nstages:\n  a: {run: [x], kind: etl}\n"),
            "p.yaml:3:23: stages.a.kind: unknown kind 'etl': expected one of ingest, clean, "
            "feature, stage, train, checkpoint, generic");
}

TEST(LoaderTest, ReportsSyntaxErrorsWithOneBasedPositions) {
  EXPECT_EQ(Report("name: p\nstages:\n  a: {run: [x}\n"),
            "p.yaml:3:14: YAML syntax error: did not find expected ',' or ']' (while parsing a "
            "flow sequence that starts at 3:12)");
  EXPECT_EQ(Report("name: p\nstages:\n\ta: {run: [x]}\n"),
            "p.yaml:3:1: YAML syntax error: tab character: YAML indentation must use spaces");
}

TEST(LoaderTest, ReportsEmptyAndNonMapDocuments) {
  EXPECT_EQ(Report(""), "p.yaml:1:1: the file is empty: expected a map with 'name' and 'stages'");
  EXPECT_EQ(Report("# nothing\n"),
            "p.yaml:1:1: the file is empty: expected a map with 'name' and 'stages'");
  EXPECT_EQ(Report("- a\n- b\n"),
            "p.yaml:1:1: expected a map with 'name' and 'stages', got a list");
}

TEST(LoaderTest, EscapesControlCharactersInMessages) {
  EXPECT_EQ(Report(std::string("name: p\nstages:\n  a: {run: [x], kind: \"tr\\x01ain\\n\"}\n")),
            "p.yaml:3:23: stages.a.kind: unknown kind 'tr\\x01ain\\n' (did you mean 'train'?)");
}

TEST(LoaderTest, ReturnsEveryDiagnosticInTheStatusAndTheList) {
  std::vector<Diagnostic> diagnostics = {Diagnostic{"earlier.yaml", 1, 1, "", "kept"}};
  auto pipeline = LoadPipelineText("name: p\nstages:\n  b: {run: [x], needs: [zz]}\n  a: {}\n",
                                   "p.yaml", {}, &diagnostics);
  ASSERT_FALSE(pipeline.ok());
  EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(diagnostics.size(), 3u);
  EXPECT_EQ(diagnostics[0].message, "kept");
  // Found in the order a then b, reported in file order.
  EXPECT_EQ(diagnostics[1].ToString(), "p.yaml:3:25: stages.b.needs[0]: unknown stage 'zz'");
  EXPECT_EQ(diagnostics[2].ToString(), "p.yaml:4:6: stages.a: missing required key 'run'");
  EXPECT_EQ(pipeline.status().message(),
            diagnostics[1].ToString() + "\n" + diagnostics[2].ToString());
}

// --- Hostile input ---------------------------------------------------------

TEST(LoaderTest, BoundsTheWorkOfNestedAliases) {
  // 1,000 stages share one 10,000-element argv through an alias: a 30 KB
  // file that would otherwise copy 10 million strings.
  std::string yaml = "name: p\nstages:\n  s0: &stage\n    run: [";
  for (int i = 0; i < 10000; ++i) yaml += "a,";
  yaml += "b]\n";
  for (int i = 1; i < 1000; ++i) yaml += "  s" + std::to_string(i) + ": *stage\n";
  EXPECT_EQ(Report(yaml), "p.yaml:4:10: the document is too large once its aliases are expanded");
}

TEST(LoaderTest, RejectsAnAliasToItsOwnEnclosingNode) {
  EXPECT_EQ(Report("name: p\nstages: &s\n  a: *s\n"),
            "p.yaml:3:6: YAML syntax error: alias '*s' refers to its own enclosing node "
            "(anchored '&s' at 2:9), which is not finished yet: a node cannot contain itself");
}

TEST(LoaderTest, RejectsNestingDeeperThanTheParserAllows) {
  const std::string yaml = "name: p\nstages: " + std::string(100000, '[');
  EXPECT_EQ(Report(yaml), "p.yaml:2:208: YAML syntax error: nesting deeper than 200 levels");
}

// --- Files -----------------------------------------------------------------

class LoadPipelineFileTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("loader_test_" + std::to_string(::getpid()) + "_" +
            testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(LoadPipelineFileTest, LabelsDiagnosticsWithThePath) {
  const std::string path = Write("bad.yaml", "name: p\nstages:\n  a: {run: [x], kynd: y}\n");
  auto pipeline = LoadPipelineFile(path);
  ASSERT_FALSE(pipeline.ok());
  EXPECT_EQ(pipeline.status().message(),
            path + ":3:17: stages.a.kynd: unknown key 'kynd' (did you mean 'kind'?)");
  EXPECT_TRUE(LoadPipelineFile(Write("good.yaml", "name: p\nstages:\n  a: {run: [x]}\n")).ok());
}

TEST_F(LoadPipelineFileTest, ReportsAMissingFileAsNotFound) {
  const std::string path = (dir_ / "absent.yaml").string();
  auto pipeline = LoadPipelineFile(path);
  EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(pipeline.status().message(),
            "cannot read pipeline file '" + path + "': No such file or directory");
}

TEST_F(LoadPipelineFileTest, ReportsADirectoryAsUnreadable) {
  auto pipeline = LoadPipelineFile(dir_.string());
  EXPECT_EQ(pipeline.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pipeline.status().message(),
            "cannot read pipeline file '" + dir_.string() + "': Is a directory");
}

TEST_F(LoadPipelineFileTest, ReportsAnUnreadableFileAsPermissionDenied) {
  const std::string path = Write("secret.yaml", "name: p\n");
  std::filesystem::permissions(path, std::filesystem::perms::none);
  // Root reads every file, so the load runs in a child that, when root,
  // first enters a user namespace of its own: there it holds no privilege
  // over files of the real root. Exit 0: PermissionDenied naming the path.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::geteuid() == 0 && ::unshare(CLONE_NEWUSER) != 0) ::_exit(2);
    absl::Status status = LoadPipelineFile(path).status();
    const bool ok = status.code() == absl::StatusCode::kPermissionDenied &&
                    status.message().find(path) != std::string_view::npos;
    ::_exit(ok ? 0 : 1);
  }
  int wait_status = 0;
  ASSERT_EQ(::waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFEXITED(wait_status));
  EXPECT_EQ(WEXITSTATUS(wait_status), 0)
      << "1: not PermissionDenied naming the file; 2: could not drop root (unshare)";
}

// --- slurm: -----------------------------------------------------------------

TEST(LoaderTest, ReadsAStagesSlurmOptions) {
  const Pipeline p = MustLoad(R"(name: p
stages:
  a:
    run: [x]
    slurm: {items_per_job: 5, options: ["--qos=short", "--exclusive"]}
  b:
    run: [y]
)");
  EXPECT_EQ(p.stages[0].slurm.items_per_job, 5u);
  EXPECT_EQ(p.stages[0].slurm.options, (std::vector<std::string>{"--qos=short", "--exclusive"}));
  EXPECT_EQ(p.stages[1].slurm.items_per_job, 0u);
  EXPECT_TRUE(p.stages[1].slurm.options.empty());
}

TEST(LoaderTest, RejectsBadSlurmOptionsNamingTheField) {
  EXPECT_EQ(Report(R"(name: p
stages:
  a:
    run: [x]
    slurm: {items_per_job: 0, option: [x]}
  b:
    run: [x]
    slurm: {items_per_job: two, options: "--qos=x"}
  c:
    run: [x]
    slurm: {options: ["", "--job-name=mine", "-Jmine", "--array=0-3", {a: b}]}
)"),
            "p.yaml:5:28: stages.a.slurm.items_per_job: must be at least 1, got 0\n"
            "p.yaml:5:31: stages.a.slurm.option: unknown key 'option' (did you mean 'options'?)\n"
            "p.yaml:8:28: stages.b.slurm.items_per_job: expected an integer, got 'two'\n"
            "p.yaml:8:42: stages.b.slurm.options: expected a list of sbatch arguments, got "
            "'--qos=x'\n"
            "p.yaml:11:23: stages.c.slurm.options[0]: empty sbatch argument\n"
            "p.yaml:11:27: stages.c.slurm.options[1]: sbatch option '--job-name' is tierflow's "
            "own: it names, tracks and logs its jobs with it\n"
            "p.yaml:11:46: stages.c.slurm.options[2]: sbatch option '-Jmine' is tierflow's own: "
            "it names, tracks and logs its jobs with it\n"
            "p.yaml:11:56: stages.c.slurm.options[3]: sbatch option '--array' is tierflow's own: "
            "it names, tracks and logs its jobs with it\n"
            "p.yaml:11:71: stages.c.slurm.options[4]: expected an sbatch argument, got a map");
}

}  // namespace
}  // namespace tierflow::dag
