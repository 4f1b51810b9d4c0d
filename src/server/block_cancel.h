// Cancellation between transformer blocks. A step of a large sample can take minutes, so
// waiting for the next step to cancel (where every rank meets anyway) is too late; the
// denoiser calls a hook after every block, and that is where a job stops now. Ranks must
// still leave together - a rank that stops while its peers go on to the next block's
// collective would hang them - so:
// - rank 0 sees the job's cancel flag and posts a notice to every rank (RankChannel);
// - the ranks that run a forward together, block by block (a sequence-parallel group; every
//   rank with FSDP, whose weights are gathered by all ranks per block), agree after each
//   block whether any of them has the notice, and all of them stop at the same block;
// - a stopped forward returns zeros instead of throwing through the sampler, so the rest of
//   the step makes the same collectives on every rank (CFG exchange, data-parallel gather);
//   at the next step boundary rank 0's flag reaches every rank and the job ends as
//   cancelled, and a job whose last forward was stopped is cancelled when it settles.
#pragma once

#include <memory>

#include "dist/communicator.h"
#include "models/family.h"
#include "server/rank_channel.h"

namespace raylight::server {

// Thrown by the block hook once the ranks of a forward agree to stop.
struct ForwardStopped {};

// The model's denoiser, made stoppable: a forward stopped by ForwardStopped yields zeros of
// the latent's shape (the job is being cancelled; the values are never used), and so does
// every later forward of the job without running (the ranks of a forward stop together, so
// they skip the same forwards).
class StoppableDenoiser final : public Denoiser {
 public:
  explicit StoppableDenoiser(std::unique_ptr<Denoiser> inner) : inner_(std::move(inner)) {}
  std::unique_ptr<PreparedConditioning> prepare(const Conditioning& c) override { return inner_->prepare(c); }
  Tensor predict(const Tensor& latent, double timestep, const PreparedConditioning& c) override;
  // Where the block hook goes (the model calls its own).
  Denoiser& inner() { return *inner_; }
  // A new job: forwards run again.
  void reset() { stopped_ = false; }

 private:
  std::unique_ptr<Denoiser> inner_;
  bool stopped_ = false;
};

// One sampling job's agreement between blocks (see the file comment). Every rank makes one;
// `lead_cancelled` is rank 0's view of the job's flag (unused elsewhere).
class BlockCancel {
 public:
  BlockCancel(RankChannel& channel, Communicator& forward_group, std::function<bool()> lead_cancelled);
  // The block hook's body: throws ForwardStopped when the forward's ranks agree to stop.
  void after_block();

 private:
  RankChannel& channel_;
  Communicator& group_;
  std::function<bool()> lead_cancelled_;
  bool seen_ = false;
};

}  // namespace raylight::server
