// What every rank does with a command: load or unload the model, sample, report memory.
// The loaded model (weights, shards, backend, rank groups) lives here between jobs - the
// role Ray actors play in the original Raylight.
//
// Ranks must leave a job the same way, or the next collective would pair unrelated
// messages. So each job runs in phases; after each phase the ranks exchange their errors
// and every rank acts on the same verdict (the first failing rank's message). Checks that
// can fail run first, in their own phase, so a bad request fails before anything changes.
// Cancellation is agreed between transformer blocks (block_cancel.h) and in the hook before
// every step: rank 0 reads the job's flag and the ranks stop together. What cannot be agreed - a rank that dies or hangs inside the
// model - ends the whole job through the collective timeout, as for `raylight sample`.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/backend_select.h"
#include "pipeline/model_loader.h"
#include "pipeline/sample_job.h"
#include "server/block_cancel.h"
#include "server/generate_job.h"
#include "server/job_board.h"
#include "server/load_request.h"
#include "server/rank_channel.h"
#include "server/rank_memory.h"
#include "server/sample_request.h"

namespace raylight::server {

// Rank 0's side of a job; left empty on the other ranks.
struct JobHooks {
  std::function<bool()> cancelled;
  std::function<void(int done, int total)> progress;
  std::function<void(const std::vector<RankMemory>&)> memory;
  // The model now loaded, with its description (plan null after an unload).
  std::function<void(const LoadPlan* plan, const nlohmann::json& info)> model_changed;
};

struct JobOutcome {
  JobState state = JobState::Succeeded;
  int status = 200;  // for failures: 400 (the request), 409 (no model / cancelled), 500, 501
  std::string error;
  JobResult result;  // rank 0 only
};

class RankExecutor {
 public:
  RankExecutor(RankChannel& channel, BackendChoice backend, bool verbose = false);
  ~RankExecutor();
  // Runs a command on this rank; every rank calls it with the same command.
  JobOutcome run(const Command& cmd, const JobHooks& hooks);
  // Gathers every rank's memory (collective).
  void heartbeat(const JobHooks& hooks);
  // Drops the model (collective: the groups' communicators are freed together).
  void unload(const JobHooks& hooks);

 private:
  JobResult load(const Command& cmd, const JobHooks& hooks);
  // Replaces the loaded model's LoRAs from the same base weights (model_loader's apply_loras).
  JobResult loras(const Command& cmd, const JobHooks& hooks);
  // Wraps model_'s denoiser so a job can stop it between blocks.
  void wrap_denoiser();
  JobResult sample(const Command& cmd, const JobHooks& hooks);
  JobResult generate(const Command& cmd, const JobHooks& hooks);
  // The part endpoints (part_jobs.h): text encoders on rank 0; the VAE decode by tiles over
  // every rank (each with the codec) or on rank 0; the VAE encode on rank 0.
  JobResult text_encode(const Command& cmd);
  JobResult vae_decode(const Command& cmd);
  JobResult vae_encode(const Command& cmd);
  // Samples a checked request with the agreed step hooks; the latent on every rank.
  Tensor sample_planned(const SampleJob& job, const JobHooks& hooks);
  // Runs `f`; then all ranks compare errors and throw the same failure with `status`.
  void phase(int status, const std::function<void()>& f);
  std::vector<RankMemory> gather_memory(bool* cancel_from_rank0, bool cancel);

  RankChannel& channel_;
  Communicator& control_;
  BackendChoice backend_;
  bool verbose_;
  std::unique_ptr<LoadedModel> model_;
  LoadPlan plan_;                                 // what model_ was loaded from
  StoppableDenoiser* stoppable_ = nullptr;        // model_'s denoiser (block_cancel.h)
  StoppableDenoiser* stoppable_low_ = nullptr;    // its low-noise expert's, for a pair
  std::unique_ptr<Communicator> forward_group_;  // the ranks that run a forward with this one
  GenerateModels generate_models_;  // rank 0; declared after model_ so it goes first
};

}  // namespace raylight::server
