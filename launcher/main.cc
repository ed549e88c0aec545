// trainguard's entry point: flags parsed, MPI up (for train, validate and predict), the
// subcommand run inside RunJob, and the outcome turned into an exit code (docs/exit-codes.md).
#include <cstdio>

#include "launcher/build_info.h"
#include "launcher/cli.h"
#include "launcher/commands.h"
#include "launcher/exit_codes.h"
#include "launcher/job.h"
#include "launcher/mpi_session.h"
#include "launcher/run_job.h"
#include "launcher/signals.h"
#include "trainer/comm/data_plane_factory.h"
#include "trainer/core/log.h"

int main(int argc, char** argv) {
  using namespace trainguard;
  SetDataPlaneEnvironment();  // first: no thread may read the environment while it changes
  Command command = ParseCommandLine(argc, argv);
  if (command.kind == Command::Kind::kVersion) {
    std::fputs(VersionText().c_str(), stdout);
    return kExitOk;
  }
  if (command.kind == Command::Kind::kEnv) {
    std::fputs(EnvironmentReport().c_str(), stdout);
    return kExitOk;
  }
  if (command.kind == Command::Kind::kDiagnose) return RunDiagnose(command);
  if (command.kind == Command::Kind::kMakeFolder) return RunMakeFolder(command);
  if (command.kind == Command::Kind::kShrinkFolder) return RunShrinkFolder(command);
  MpiSession mpi(&argc, &argv);
  if (mpi.world() > 1) SetLogRank(mpi.rank());
  if (!command.train.log_dir.empty()) {
    const std::string error = SetLogFile(command.train.log_dir + "/rank" + std::to_string(mpi.rank()) + ".log");
    if (!error.empty()) LogLine("warning: --log-dir: cannot write the log file " + error + "; logging to stderr only");
  }
  switch (command.kind) {
    case Command::Kind::kExit:
      if (mpi.rank() == 0) std::fputs(command.message.c_str(), command.exit_code == 0 ? stdout : stderr);
      return command.exit_code;
    case Command::Kind::kTrain:
      HandleJobSignals({mpi.rank(), !command.train.checkpoint.empty(), command.train.preempt_grace});
      return RunJob(command, mpi, [&](Job& job) { return Train(command, job); });
    case Command::Kind::kValidate:
      HandleJobSignals({mpi.rank(), false, command.train.preempt_grace});
      return RunJob(command, mpi, [&](Job& job) { return Validate(command, job); });
    case Command::Kind::kPredict:
      HandleJobSignals({mpi.rank(), false, command.train.preempt_grace});
      return RunJob(
          command, mpi, [&](Job& job) { return Predict(command, job); }, TakeCheckpointModel);
    case Command::Kind::kDiagnose:
    case Command::Kind::kMakeFolder:
    case Command::Kind::kShrinkFolder:
    case Command::Kind::kEnv:
    case Command::Kind::kVersion:
      break;  // handled before MPI
  }
  return kExitInternal;
}
