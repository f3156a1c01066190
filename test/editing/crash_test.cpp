// Crash safety of the editlab command itself: `editlab pretrain` and `editlab train`, killed
// with SIGKILL at random moments (before the first checkpoint, mid-step, mid-checkpoint) and
// resumed, end with exactly the weights of an uninterrupted run with the same seed; and a base
// model of another world is refused.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "train/checkpoint.hpp"
#include "scratch.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;

// Starts `editlab args...` with its output discarded.
pid_t spawn_editlab(const std::vector<std::string>& args) {
  std::vector<std::string> argv_strings{EDITLAB_BINARY};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int failed = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(failed, 0) << "could not start " << argv[0];
  return pid;
}

// The exit status of a finished child (-1 when a signal ended it).
int wait_for(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_editlab(const std::vector<std::string>& args) { return wait_for(spawn_editlab(args)); }

// The step of the newest complete checkpoint in `out`, or -1 (also while one is being renamed).
long checkpoint_step(const fs::path& out) {
  try {
    const auto dir = editlab::train::find_checkpoint(out);
    return dir.empty() ? -1 : editlab::train::read_json(dir / "state.json").at("step").get<long>();
  } catch (const std::exception&) {
    return -1;
  }
}

struct KilledRun {
  int kills_before_checkpoint = 0, kills_after_checkpoint = 0, exit_status = -1;
};

// Runs `args` into `out`, SIGKILLing it once a few milliseconds after it starts and then
// `kills` times each at a random moment soon after it wrote a new checkpoint, restarting it
// after each kill (with --resume when a checkpoint survived, else afresh, as a user would),
// and finally lets it finish. `finished` says whether a run in `out` completed.
template <class Finished>
KilledRun run_with_kills(std::vector<std::string> args, const fs::path& out, int kills, Finished finished) {
  std::mt19937 rng(12345);
  KilledRun result;
  long last_step = -1;
  for (int round = 0; round <= kills + 1; ++round) {
    if (finished()) break;
    auto round_args = args;
    if (checkpoint_step(out) >= 0) round_args.push_back("--resume");
    const pid_t pid = spawn_editlab(round_args);
    if (round == kills + 1) {  // the last start runs to the end
      result.exit_status = wait_for(pid);
      break;
    }
    bool killed = false;
    if (round == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(5, 60)(rng)));
      killed = kill(pid, SIGKILL) == 0;
    } else {
      while (waitpid(pid, nullptr, WNOHANG) == 0) {
        const long step = checkpoint_step(out);
        if (step > last_step) {
          last_step = step;
          std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 40)(rng)));
          killed = kill(pid, SIGKILL) == 0;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    const int status = wait_for(pid);
    if (killed && status == -1) {
      (round == 0 ? result.kills_before_checkpoint : result.kills_after_checkpoint) += 1;
    } else {
      result.exit_status = status;  // it finished before the kill landed
    }
  }
  return result;
}

fs::path scratch(const std::string& name) {
  const fs::path dir = scratch_path("editlab_crash_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

const std::vector<std::string> kTinyWorld = {"--people", "8", "--world-seed", "3"};

std::vector<std::string> pretrain_args(const fs::path& out) {
  std::vector<std::string> args = {"pretrain", "--out", out.string(), "--steps", "60", "--batch-size", "8",
                                   "--vocab-size", "150", "--d-model", "16", "--d-ff", "32", "--heads", "2",
                                   "--layers", "1", "--decoder-layers", "1", "--warmup", "2", "--lr", "3e-3",
                                   "--checkpoint-every", "5", "--threads", "2"};
  args.insert(args.end(), kTinyWorld.begin(), kTinyWorld.end());
  return args;
}

bool pretrain_finished(const fs::path& out) { return fs::exists(out / "quality.json") && checkpoint_step(out) < 0; }

// Exit status 3: the tiny model misses the quality bars, which is not what this test is about.
bool pretrain_succeeded(int status) { return status == 0 || status == 3; }

TEST(Crash, KilledAndResumedPretrainingEndsWithTheUninterruptedWeights) {
  const auto dir = scratch("pretrain");
  ASSERT_TRUE(pretrain_succeeded(run_editlab(pretrain_args(dir / "whole"))));
  const auto killed = run_with_kills(pretrain_args(dir / "killed"), dir / "killed", 4,
                                     [&] { return pretrain_finished(dir / "killed"); });
  EXPECT_GE(killed.kills_after_checkpoint, 3) << "too few kills landed mid-run to test resuming";
  ASSERT_TRUE(pretrain_finished(dir / "killed")) << "exit status " << killed.exit_status;
  EXPECT_TRUE(file_bytes(dir / "whole" / "model.safetensors") == file_bytes(dir / "killed" / "model.safetensors"))
      << "the resumed weights differ from the uninterrupted run's";
  EXPECT_TRUE(file_bytes(dir / "whole" / "spiece.model") == file_bytes(dir / "killed" / "spiece.model"));
}

TEST(Crash, KilledAndResumedEditorTrainingEndsWithTheUninterruptedWeights) {
  const auto dir = scratch("train");
  ASSERT_TRUE(pretrain_succeeded(run_editlab(pretrain_args(dir / "base"))));
  auto train_args = [&](const fs::path& out) {
    std::vector<std::string> args = {"train", "--method", "seprog", "--benchmark", "qa", "--model", (dir / "base").string(),
                                     "--out", out.string(), "--steps", "40", "--lr", "3e-3", "--edit-sets", "4",
                                     "--examples", "16", "--set", "eval_every=10", "--checkpoint-every", "4",
                                     "--threads", "2"};
    args.insert(args.end(), kTinyWorld.begin(), kTinyWorld.end());
    return args;
  };
  // A base model pretrained on another world is refused before anything is trained or written.
  auto other_world = train_args(dir / "other_world");
  other_world.resize(other_world.size() - kTinyWorld.size());
  other_world.insert(other_world.end(), {"--people", "8", "--world-seed", "4"});
  EXPECT_EQ(run_editlab(other_world), 1);
  EXPECT_FALSE(fs::exists(dir / "other_world" / "run.json"));
  EXPECT_TRUE(editlab::train::find_checkpoint(dir / "other_world").empty());
  // So is a gate threshold outside (0, 1), by the command line itself (CLI11's exit status for a
  // failed validator, 105), not later by the editor (status 1).
  for (const char* threshold : {"0", "1", "1.5"}) {
    auto bad_threshold = train_args(dir / "bad_threshold");
    bad_threshold.insert(bad_threshold.end(), {"--gate-threshold", threshold});
    EXPECT_EQ(run_editlab(bad_threshold), 105) << "--gate-threshold " << threshold;
    EXPECT_FALSE(fs::exists(dir / "bad_threshold")) << "--gate-threshold " << threshold;
  }
  ASSERT_EQ(run_editlab(train_args(dir / "whole")), 0);
  const auto whole_run = editlab::train::read_json(dir / "whole" / "run.json");
  ASSERT_GT(whole_run.at("training").at("best_step").get<int>(), 0) << "training must move the weights for the test to mean anything";
  // A --resume run takes its options from the checkpoint, so the restarts repeat the same flags.
  const auto killed = run_with_kills(train_args(dir / "killed"), dir / "killed", 4,
                                     [&] { return fs::exists(dir / "killed" / "run.json"); });
  EXPECT_GE(killed.kills_after_checkpoint, 3) << "too few kills landed mid-run to test resuming";
  ASSERT_TRUE(fs::exists(dir / "killed" / "run.json")) << "exit status " << killed.exit_status;
  EXPECT_TRUE(file_bytes(dir / "whole" / "seprog.safetensors") == file_bytes(dir / "killed" / "seprog.safetensors"))
      << "the resumed weights differ from the uninterrupted run's";
}

}  // namespace
