// Communicator over NCCL for device memory. Operations are queued on the compute stream
// (so later kernels see their results without a host wait); exchanges and prefetching
// gathers run on a side stream and join the compute stream at wait(). A watchdog thread
// watches every queued operation: one that has not finished within the collective timeout
// ends the job with a message naming it, instead of a silent hang.
//
// No CUDA or NCCL types in this header: plain C++ (the loader) can create one.
#pragma once

#include <memory>
#include <string>

#include "dist/communicator.h"

namespace raylight {

// Creates the NCCL communicator of a group. `bootstrap` is the same group over MPI (host
// memory): its rank 0 makes the NCCL id and broadcasts it. `stream` is the backend's
// cudaStream_t. Started operations (start_exchange, start_all_gather) run on `side_stream`
// when given (FSDP passes the backend's transfer stream, so gathers queue behind the shard
// uploads they read), else on a stream of the communicator's own. Every rank of the group
// must call this.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, void* stream,
                                                     const std::string& name,
                                                     void* side_stream = nullptr);

// NCCL settings for PCIe machines without working peer-to-peer (consumer cards):
// NCCL_P2P_DISABLE=1 and NCCL_SHM_DISABLE=1, applied before any communicator is made
// unless the user set them already. Returns a line describing what was applied.
std::string apply_pcie_safe_nccl_settings();

}  // namespace raylight
