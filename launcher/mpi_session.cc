// MPI initialisation and rank facts (see mpi_session.h).
#include "launcher/mpi_session.h"

#include <cstdio>
#include <cstdlib>

#include "launcher/exit_codes.h"
#include "trainer/comm/mpi_check.h"

namespace trainguard {

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  TG_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
  // Errors come back as codes, which TG_MPI_CHECK turns into exceptions.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  TG_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  if (provided < MPI_THREAD_MULTIPLE) {
    // The watchdog thread sends stop notices while the training thread is in MPI calls.
    std::fprintf(stderr,
                 "[rank %d] error: this MPI library gives thread level %d, below MPI_THREAD_MULTIPLE (%d), which "
                 "trainguard's watchdog thread needs; use an MPI built with thread support (OpenMPI 4 is); "
                 "exiting with code %d\n",
                 rank_, provided, MPI_THREAD_MULTIPLE, static_cast<int>(kExitComm));
    std::_Exit(kExitComm);
  }
  TG_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_));
  MPI_Comm node;
  TG_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  TG_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  TG_MPI_CHECK(MPI_Comm_size(node, &local_world_));
  MPI_Comm_free(&node);
}

MpiSession::~MpiSession() { MPI_Finalize(); }

}  // namespace trainguard
