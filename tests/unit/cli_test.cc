// Command-line parsing: defaults, the precedence of flag / config file / environment, and
// errors that name the flag or variable.
#include "launcher/cli.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "launcher/job.h"

namespace trainguard {
namespace {

Command Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "trainguard");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

std::string WriteConfig(const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("tg_cli_" + std::to_string(getpid()) + ".toml");
  std::ofstream(path) << text;
  return path.string();
}

class Cli : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("TRAINGUARD_EPOCHS");
    unsetenv("TRAINGUARD_BATCHSIZE");
    unsetenv("TRAINGUARD_HOME");
  }
};

TEST_F(Cli, DefaultsAreHw3s) {
  const Command c = Parse({"train"});
  ASSERT_EQ(c.kind, Command::Kind::kTrain);
  EXPECT_EQ(c.train.lr, 3e-4);
  EXPECT_EQ(c.train.weight_decay, 1e-5);
  EXPECT_EQ(c.train.ignore_index, -1);
  EXPECT_TRUE(c.train.evaluate);
  EXPECT_NE(c.resolved.find("batch-size=64"), std::string::npos) << c.resolved;
}

TEST_F(Cli, BadValueNamesTheFlag) {
  const Command c = Parse({"train", "--batch-size", "-3"});
  EXPECT_EQ(c.kind, Command::Kind::kExit);
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.message.find("--batch-size"), std::string::npos) << c.message;
}

TEST_F(Cli, ASingleValueFlagGivenTwiceIsRefusedWithBothValues) {
  Command c = Parse({"train", "--checkpoint", "a", "--epochs", "2", "--checkpoint", "b"});
  EXPECT_EQ(c.kind, Command::Kind::kExit);
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_EQ(c.message, "trainguard: --checkpoint given twice (a, then b): give it once\n");
  c = Parse({"train", "--epochs=2", "--epochs", "3", "--epochs", "4"});
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_TRUE(c.message.find("--epochs given 3 times (2, 3, then 4)") != std::string::npos) << c.message;
  c = Parse({"train", "--eval", "--no-eval"});  // a switch and its negation are one setting
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_TRUE(c.message.find("--eval given twice") != std::string::npos) << c.message;
  c = Parse({"shrink-folder", "a", "b", "--side", "96", "--side", "128"});  // a subcommand's own option
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_TRUE(c.message.find("--side given twice (96, then 128)") != std::string::npos) << c.message;
  // Given once on the command line and once in the environment or the config file is no repeat.
  setenv("TRAINGUARD_EPOCHS", "7", 1);
  c = Parse({"train", "--epochs", "3", "--config", WriteConfig("epochs = 5\n")});
  EXPECT_EQ(c.kind, Command::Kind::kTrain) << c.message;
  EXPECT_EQ(c.train.epochs, 3);
}

TEST_F(Cli, ListFlagsKeepEveryValueGiven) {
  const Command c =
      Parse({"train", "--inject-fault", "nan:rank=0:step=1", "--inject-fault", "kill:rank=1:step=2", "--plant-label",
             "1=5", "--plant-label", "2=6", "--excluded-nodes", "n1", "--excluded-nodes", "n2,n3"});
  ASSERT_EQ(c.kind, Command::Kind::kTrain) << c.message;
  EXPECT_EQ(c.train.inject_faults.size(), 2u);
  EXPECT_EQ(c.train.plant_labels.size(), 2u);
  EXPECT_EQ(c.train.excluded_nodes, (std::vector<std::string>{"n1", "n2", "n3"}));
}

TEST_F(Cli, UnderSlurmTheMetricsJobIsTheJobsOwnUnlessSet) {
  EXPECT_EQ(SlurmMetricsJob("trainguard-cpu", "4242"), "trainguard-cpu-4242");
  EXPECT_EQ(SlurmMetricsJob("", "7"), "trainguard-7");
  EXPECT_EQ(SlurmMetricsJob("my job/1", "7"), "my_job_1-7");
  EXPECT_EQ(SlurmMetricsJob("x", ""), "");
  setenv("SLURM_JOB_ID", "4242", 1);
  setenv("SLURM_JOB_NAME", "food", 1);
  EXPECT_EQ(Parse({"train"}).train.metrics_job, "food-4242");
  EXPECT_EQ(Parse({"train", "--metrics-job", "mine"}).train.metrics_job, "mine");
  unsetenv("SLURM_JOB_ID");
  unsetenv("SLURM_JOB_NAME");
  EXPECT_EQ(Parse({"train"}).train.metrics_job, "trainguard");
}

TEST_F(Cli, BadEnvironmentValueNamesTheVariable) {
  setenv("TRAINGUARD_EPOCHS", "many", 1);
  const Command c = Parse({"train"});
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.message.find("TRAINGUARD_EPOCHS=many"), std::string::npos) << c.message;
}

TEST_F(Cli, UnknownEnvironmentVariableIsAnError) {
  setenv("TRAINGUARD_BATCHSIZE", "8", 1);
  const Command c = Parse({"train"});
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.message.find("TRAINGUARD_BATCHSIZE"), std::string::npos) << c.message;
}

TEST_F(Cli, TrainguardHomeBelongsToTheScriptsAndIsAccepted) {
  setenv("TRAINGUARD_HOME", "/tmp/elsewhere", 1);
  const Command c = Parse({"make-folder", "/tmp/out"});
  EXPECT_EQ(c.kind, Command::Kind::kMakeFolder) << c.message;
}

TEST_F(Cli, ShrinkFolderTakesASourceAnOutputAndItsOwnSideAndQuality) {
  Command c = Parse({"shrink-folder", "/data/food-11", "/data/food-11-small"});
  EXPECT_EQ(c.kind, Command::Kind::kShrinkFolder) << c.message;
  EXPECT_EQ(c.source, "/data/food-11");
  EXPECT_EQ(c.bundle, "/data/food-11-small");
  EXPECT_EQ(c.shrink.short_side, 0) << "0: from --image-size when it runs";
  EXPECT_EQ(c.shrink.quality, 90);
  c = Parse({"shrink-folder", "a", "b", "--side", "192", "--quality", "85"});
  EXPECT_EQ(c.shrink.short_side, 192);
  EXPECT_EQ(c.shrink.quality, 85);
  for (const auto& bad : std::vector<std::vector<std::string>>{{"shrink-folder", "a"},
                                                               {"shrink-folder", "a", "b", "--quality", "0"},
                                                               {"shrink-folder", "a", "b", "--side", "-1"}}) {
    c = Parse(bad);
    EXPECT_EQ(c.exit_code, 2) << bad.back();
    EXPECT_EQ(c.kind, Command::Kind::kExit) << bad.back();
  }
  EXPECT_EQ(Parse({"train", "--side", "192"}).exit_code, 2) << "--side belongs to shrink-folder alone";
}

bool Has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST_F(Cli, EachSubcommandsHelpListsItsGroupsOnly) {
  const std::string train = Parse({"train", "--help"}).message;
  for (const char* group : {"\nData:", "\nModel and training:", "\nDistribution and devices:", "\nLabel checks:",
                            "\nFaults and diagnosis:", "\nMetrics:", "\nCheckpoints:"}) {
    EXPECT_TRUE(Has(train, group)) << group << " missing from train --help:\n" << train;
  }
  EXPECT_FALSE(Has(train, "\nPrediction:")) << train;
  EXPECT_FALSE(Has(train, "--predictions")) << train;
  EXPECT_TRUE(Has(train, "--batch-size INT:> 0 (default 64)  [TRAINGUARD_BATCH_SIZE]")) << train;

  const std::string predict = Parse({"predict", "--help"}).message;
  EXPECT_TRUE(Has(predict, "\nPrediction:") && Has(predict, "--predictions")) << predict;
  EXPECT_FALSE(Has(predict, "\nLabel checks:")) << predict;
  EXPECT_FALSE(Has(predict, "--checkpoint-every")) << "predict reads a checkpoint, writes none:\n" << predict;

  const std::string validate = Parse({"validate", "--help"}).message;
  EXPECT_TRUE(Has(validate, "\nLabel checks:")) << validate;
  EXPECT_FALSE(Has(validate, "\nModel and training:") || Has(validate, "\nCheckpoints:")) << validate;

  const std::string shrink = Parse({"shrink-folder", "--help"}).message;
  EXPECT_TRUE(Has(shrink, "--side") && Has(shrink, "--image-size")) << shrink;
  EXPECT_FALSE(Has(shrink, "\nMetrics:")) << shrink;
  EXPECT_EQ(Parse({"train", "--help"}).exit_code, 0);
}

TEST_F(Cli, AFlagOfAnotherSubcommandIsRefusedByName) {
  Command c = Parse({"validate", "--epochs", "3"});
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_TRUE(Has(c.message, "--epochs is not an option of validate (it is one of train)")) << c.message;
  c = Parse({"train", "--predictions=out.csv"});
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_TRUE(Has(c.message, "--predictions is not an option of train (it is one of predict)")) << c.message;
  c = Parse({"--checkpoint-every", "5", "predict"});  // before the subcommand's name too
  EXPECT_EQ(c.exit_code, 2) << c.message;
  // One config file serves every subcommand: a setting there for another one is no error.
  c = Parse({"train", "--config", WriteConfig("predictions = p.csv\nepochs = 2\n")});
  EXPECT_EQ(c.kind, Command::Kind::kTrain) << c.message;
  EXPECT_EQ(Parse({"predict", "--config", WriteConfig("epochs = 2\n")}).kind, Command::Kind::kPredict);
}

TEST_F(Cli, VersionAndEnvNeedNoSubcommandOptions) {
  EXPECT_EQ(Parse({"--version"}).kind, Command::Kind::kVersion);
  EXPECT_EQ(Parse({"env"}).kind, Command::Kind::kEnv);
  const std::string top = Parse({"--help"}).message;
  EXPECT_TRUE(Has(top, "trainguard SUBCOMMAND --help") && Has(top, "  env ")) << top;
}

TEST_F(Cli, ResolvedConfigurationShowsFlagDefaultsAndSeparatesWhatWasSet) {
  const Command c = Parse({"train", "--no-eval", "--width", "0.5"});
  // Flags that default to on read "true" unless turned off.
  for (const char* line : {"augment=true", "validate-labels=true", "diagnose=true", "eval=false", "resume=\"no\""}) {
    EXPECT_NE(c.resolved.find(line), std::string::npos) << line << " missing from:\n" << c.resolved;
  }
  // Only the settings given, in the same syntax.
  EXPECT_EQ(c.resolved_set, "eval=false\nwidth=0.5\n");
}

TEST_F(Cli, ResumeTakesYesAutoOrNoAndABareFlagMeansYes) {
  const std::string ckpt[] = {"--checkpoint", "/tmp/ckpt"};
  EXPECT_EQ(Parse({"train", ckpt[0], ckpt[1]}).train.resume, "no");
  Command c = Parse({"train", ckpt[0], ckpt[1], "--resume", "--epochs", "3"});
  EXPECT_EQ(c.train.resume, "yes") << c.message;
  EXPECT_EQ(c.train.epochs, 3);
  EXPECT_NE(c.resolved_set.find("resume=\"yes\""), std::string::npos) << c.resolved_set;
  c = Parse({"train", ckpt[0], ckpt[1], "--resume", "auto"});
  EXPECT_EQ(c.train.resume, "auto") << c.message;
  setenv("TRAINGUARD_RESUME", "auto", 1);
  EXPECT_EQ(Parse({"train", ckpt[0], ckpt[1]}).train.resume, "auto");
  unsetenv("TRAINGUARD_RESUME");
  // A config file written before --resume took values still reads.
  EXPECT_EQ(Parse({"train", "--config", WriteConfig("resume = true\ncheckpoint = /tmp/c\n")}).train.resume, "yes");
  c = Parse({"train", ckpt[0], ckpt[1], "--resume", "later"});
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.message.find("--resume: unknown value 'later'"), std::string::npos) << c.message;
}

TEST(SharedGpus, RanksOnOneGpuOfAHostAreNamedAndOwnGpusPass) {
  // Slurm's --gpus-per-task=1: every rank sees index 0, but each its own GPU.
  EXPECT_EQ(SharedGpuError({"a 0000:1b:00.0", "a 0000:3b:00.0", "b 0000:1b:00.0", "b 0000:3b:00.0"}), "");
  EXPECT_EQ(SharedGpuError({"a 0000:1b:00.0", "a 0000:1b:00.0", "b 0000:1b:00.0", "a 0000:1b:00.0"}),
            "ranks 0, 1, 3 share the GPU 0000:1b:00.0 on a");
  EXPECT_EQ(SharedGpuError({"a x", "a x", "b y", "b y"}),
            "ranks 0, 1 share the GPU x on a; ranks 2, 3 share the GPU y on b");
}

TEST_F(Cli, FlagBeatsEnvironmentWhichBeatsConfigFileWhichBeatsDefault) {
  const std::string cfg = WriteConfig("epochs = 3\nwidth = 0.5\nbatch-size = 16\n");
  // epochs in all three places, width in the file and the environment, batch-size in the file
  // and on the command line, lr on the command line only, weight-decay in the environment only,
  // seed in the file only, and max-steps nowhere.
  setenv("TRAINGUARD_EPOCHS", "7", 1);
  setenv("TRAINGUARD_WIDTH", "0.25", 1);
  setenv("TRAINGUARD_WEIGHT_DECAY", "0.01", 1);
  Command c = Parse({"train", "--config", cfg, "--epochs", "4", "--batch-size", "8", "--lr", "0.1"});
  ASSERT_EQ(c.kind, Command::Kind::kTrain) << c.message;
  EXPECT_EQ(c.train.epochs, 4) << "the command line beats the environment and the file";
  EXPECT_EQ(c.train.width, 0.25) << "the environment beats the file";
  EXPECT_EQ(c.train.batch_size, 8) << "the command line beats the file";
  EXPECT_EQ(c.train.lr, 0.1);
  EXPECT_EQ(c.train.weight_decay, 0.01);
  EXPECT_EQ(c.train.max_steps, 0) << "the default";
  c = Parse({"train", "--config", cfg});
  EXPECT_EQ(c.train.epochs, 7) << "the environment beats the file";
  EXPECT_EQ(c.train.batch_size, 16) << "the file beats the default";
  // The settings given list each once, with the value that won.
  EXPECT_TRUE(c.resolved_set.find("epochs=7\n") != std::string::npos) << c.resolved_set;
  EXPECT_TRUE(c.resolved_set.find("epochs=3") == std::string::npos) << c.resolved_set;
  // An empty variable sets nothing: the file's value holds.
  setenv("TRAINGUARD_EPOCHS", "", 1);
  EXPECT_EQ(Parse({"train", "--config", cfg}).train.epochs, 3);
  unsetenv("TRAINGUARD_WIDTH");
  unsetenv("TRAINGUARD_WEIGHT_DECAY");
  unsetenv("TRAINGUARD_EPOCHS");
  c = Parse({"train", "--config", cfg});
  EXPECT_EQ(c.train.epochs, 3);
  EXPECT_EQ(c.train.width, 0.5);
  // A switch: the environment's off beats the file's on.
  setenv("TRAINGUARD_EVAL", "false", 1);
  EXPECT_FALSE(Parse({"train", "--config", WriteConfig("eval = true\n")}).train.evaluate);
  unsetenv("TRAINGUARD_EVAL");
}

TEST_F(Cli, UnknownConfigKeyIsAnError) {
  const Command c = Parse({"train", "--config", WriteConfig("epochz = 3\n")});
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.message.find("epochz"), std::string::npos) << c.message;
}

TEST_F(Cli, CrossFieldMistakesAreExplained) {
  Command c = Parse({"train", "--resume"});
  EXPECT_NE(c.message.find("--checkpoint"), std::string::npos) << c.message;
  c = Parse({"train", "--num-classes", "11", "--ignore-index", "3"});
  EXPECT_NE(c.message.find("--ignore-index 3"), std::string::npos) << c.message;
  c = Parse({"train", "--dataset", "imagenet"});
  EXPECT_NE(c.message.find("--dataset"), std::string::npos) << c.message;
  c = Parse({"train", "--bad-samples", "quarantine"});
  EXPECT_NE(c.message.find("needs --checkpoint"), std::string::npos) << c.message;
  c = Parse({"train", "--bad-samples", "skip", "--checkpoint", "x"});
  EXPECT_NE(c.message.find("--bad-samples: unknown policy 'skip'"), std::string::npos) << c.message;
  c = Parse({"train", "--quarantine", "q.jsonl"});
  EXPECT_NE(c.message.find("--bad-samples quarantine only"), std::string::npos) << c.message;
}

TEST_F(Cli, FusedBlocksTakesAutoOnOrOff) {
  EXPECT_EQ(Parse({"train"}).train.fused_blocks, "auto");
  EXPECT_EQ(Parse({"train", "--fused-blocks", "on"}).train.fused_blocks, "on");
  const Command c = Parse({"train", "--fused-blocks", "yes"});
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.message.find("--fused-blocks: unknown value 'yes'; use auto, on or off"), std::string::npos) << c.message;
}

}  // namespace
}  // namespace trainguard
