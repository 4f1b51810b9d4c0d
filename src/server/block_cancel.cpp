// Cancellation between blocks (see block_cancel.h).
#include "server/block_cancel.h"

#include <vector>

namespace raylight::server {

Tensor StoppableDenoiser::predict(const Tensor& latent, double timestep, const PreparedConditioning& c) {
  if (!stopped_) {
    try {
      return inner_->predict(latent, timestep, c);
    } catch (const ForwardStopped&) {
      stopped_ = true;
    }
  }
  return Tensor::zeros(latent.shape());
}

BlockCancel::BlockCancel(RankChannel& channel, Communicator& forward_group, std::function<bool()> lead_cancelled)
    : channel_(channel), group_(forward_group), lead_cancelled_(std::move(lead_cancelled)) {}

void BlockCancel::after_block() {
  if (!seen_) {
    if (channel_.comm().rank() == 0) {
      if (lead_cancelled_ && lead_cancelled_()) {
        channel_.post_cancel_notice();
        seen_ = true;
      }
    } else {
      seen_ = channel_.cancel_noticed();
    }
  }
  bool stop = seen_;
  if (group_.size() > 1) {  // the forward's ranks stop at the same block, or none does
    const int32_t mine = seen_ ? 1 : 0;
    std::vector<int32_t> all(group_.size());
    group_.all_gather(&mine, all.data(), sizeof mine);
    for (int32_t v : all) stop = stop || v != 0;
  }
  if (stop) throw ForwardStopped{};
}

}  // namespace raylight::server
