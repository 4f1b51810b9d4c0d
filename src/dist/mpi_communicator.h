// Communicator over MPI for host memory. Collectives are built from non-blocking
// point-to-point messages polled against a deadline, so a rank that never arrives is
// detected and named (MPI's own collectives would block forever).
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace raylight {

// Seconds any single collective may take before the job is ended (default 300).
void set_collective_timeout(double seconds);
double collective_timeout();

// Wraps `comm` (owned: freed on destruction unless it is MPI_COMM_WORLD).
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm, const std::string& name);

}  // namespace raylight
