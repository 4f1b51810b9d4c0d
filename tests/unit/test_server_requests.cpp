// The server's request checks without a server: sampling and load requests against the
// tiny model, --listen parsing and the loopback rule, and the job board's queue.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "models/wan/wan_family.h"
#include "models/wan/wan_tiny.h"
#include "sampling/schedule.h"
#include "server/job_board.h"
#include "server/listen_address.h"
#include "server/load_request.h"
#include "server/sample_request.h"

using namespace raylight;
using namespace raylight::server;

namespace {

std::string body(const std::vector<std::pair<std::string, Tensor>>& tensors, const nlohmann::json& params) {
  return encode_safetensors(tensors, {{"request", params.is_null() ? "{}" : params.dump()}});
}

// The tiny model's spec, as the embedded model or as a checkpoint of its shapes.
SampleJob plan(const std::string& b, bool tiny = true) {
  return plan_sample(parse_sample_body(b), *wan_spec(wan_tiny_config(), tiny ? "tiny" : ""));
}

std::string refusal(const std::string& b, bool tiny = true) {
  try {
    plan(b, tiny);
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

TEST(ServerSampleRequest, DefaultsFollowTheCommandLine) {
  SampleJob p = plan(body({}, nlohmann::json::object()));
  EXPECT_EQ(p.item_shape, (Shape{16, 3, 16, 16}));  // tiny: 128x128, 9 frames
  EXPECT_EQ(p.steps(), 10);
  EXPECT_EQ(p.sigmas, flow_sigmas(10, 5.0));
  EXPECT_EQ(p.sampler, SamplerKind::UniPC);
  EXPECT_EQ(p.cfg, 5.0);
  EXPECT_FALSE(p.batched_output);
  EXPECT_TRUE(!p.negative.empty());  // built-in negative embeddings stand in
}

TEST(ServerSampleRequest, ReadsComfyShapesNoiseAndDenoise) {
  const int64_t text = wan_tiny_config().text_dim;
  Tensor ctx = Tensor::zeros({1, 7, text});
  Tensor lat = Tensor::zeros({2, 16, 2, 8, 8}).to_dtype(DType::F16);
  Tensor noise = Tensor::zeros({2, 16, 2, 8, 8});
  SampleJob p = plan(body({{"context", ctx}, {"negative", ctx}, {"latent", lat}, {"noise", noise}},
                           {{"steps", 4}, {"denoise", 0.5}, {"shift", 3.0}, {"sampler", "euler"}, {"cfg", 2}}));
  EXPECT_EQ(p.positive.at("context").shape(), (Shape{7, text}));
  EXPECT_EQ(p.batch, 2);
  EXPECT_TRUE(p.batched_output);
  EXPECT_EQ(p.item_shape, (Shape{16, 2, 8, 8}));
  std::vector<double> all = flow_sigmas(8, 3.0);
  EXPECT_EQ(p.sigmas, std::vector<double>(all.end() - 5, all.end()));
  EXPECT_EQ(p.sampler, SamplerKind::Euler);
  SampleJob q = plan(body({{"noise", Tensor::zeros({16, 1, 4, 4})}}, {{"sigmas", {1.0, 0.5, 0.0}}, {"cfg", 1}}));
  EXPECT_EQ(q.sigmas, (std::vector<double>{1.0, 0.5, 0.0}));
  EXPECT_FALSE(q.batched_output);
  EXPECT_FALSE(!q.negative.empty());
  EXPECT_EQ(plan(body({}, {{"batch", 3}, {"width", 32}, {"height", 48}, {"frames", 5}})).item_shape,
            (Shape{16, 2, 6, 4}));
}

TEST(ServerSampleRequest, RefusesWhatCannotRunWithAMessage) {
  const int64_t text = wan_tiny_config().text_dim;
  Tensor lat = Tensor::zeros({16, 1, 4, 4});
  struct Case {
    std::string body, words;
    bool tiny = true;
  } cases[] = {
      {body({{"contxt", lat}}, {}), "unknown tensor 'contxt'"},
      {body({}, {{"stepz", 3}}), "unknown parameter \"stepz\""},
      {encode_safetensors({}, {{"other", "1"}}), "unknown metadata key"},
      {encode_safetensors({}, {{"request", "{bad"}}), "not valid JSON"},
      {encode_safetensors({}, {{"request", "[1]"}}), "must be a JSON object"},
      {body({{"latent", Tensor::zeros({16, 1, 4, 4}, DType::I32)}}, {}), "dtype I32"},
      {body({{"latent", Tensor::zeros({15, 1, 4, 4})}}, {}), "tensor 'latent' has shape [15, 1, 4, 4]"},
      {body({{"latent", Tensor::zeros({16, 1, 5, 4})}}, {}), "multiples of 2"},
      {body({{"latent", lat}, {"noise", Tensor::zeros({16, 1, 4, 6})}}, {}), "tensor 'noise' has shape"},
      {body({{"latent", lat}}, {{"width", 64}}), "cannot be given with a latent"},
      {body({{"context", Tensor::zeros({3, text + 1})}}, {}), "tensor 'context' has shape [3, 65]"},
      {body({{"context", Tensor::zeros({513, text})}}, {}), "1 to 512 tokens"},
      {body({}, {}), "tensor 'context' (the positive prompt's [tokens <= 512, 64]) is required", false},
      {body({{"context", Tensor::zeros({3, text})}}, {}), "tensor 'negative' is required", false},
      {body({}, {{"sampler", "heun"}}), "unknown sampler \"heun\""},
      {body({}, {{"steps", 0}}), "\"steps\" must be an integer from 1"},
      {body({}, {{"denoise", 1.5}}), "\"denoise\" must be in (0, 1]"},
      {body({}, {{"denoise", 0.5}}), "a 'latent' tensor to start from is required"},
      // steps / denoise beyond int: refused by size, not wrapped into a negative step count
      {body({{"latent", lat}}, {{"steps", 2}, {"denoise", 1e-9}}), "more than 100000 steps"},
      {body({}, {{"sigmas", {1.0, 1.0, 0.0}}}), "strictly decreasing"},
      {body({}, {{"sigmas", {1.5, 0.0}}}), "must lie in [0, 1]"},
      {body({}, {{"sigmas", {1.0, 0.0}}, {"steps", 3}}), "cannot be given with \"sigmas\""},
      {body({}, {{"width", 100}}), "multiples of 16"},
      {body({}, {{"seed", -1}}), "non-negative integer"},
      {body({}, {{"cfg", "high"}}), "\"cfg\" must be a finite number"},
      {body({{"y", lat}}, {}), "unknown tensor 'y' for Wan2.1 T2V"},
  };
  for (const Case& c : cases) {
    std::string msg = refusal(c.body, c.tiny);
    EXPECT_NE(msg.find(c.words), std::string::npos) << "message: " << msg << "\nexpected: " << c.words;
  }
  Tensor nan = Tensor::from_vector({1, 64}, std::vector<float>(64, 0.0f));
  nan.f32()[5] = std::nanf("");
  EXPECT_NE(refusal(body({{"context", nan}}, {})).find("NaN or infinite value at element 5"), std::string::npos);
}

TEST(ServerLoadRequest, ChecksLayoutsAgainstTheRanksAndHeads) {
  LoadPlan p = plan_load({{"model", "tiny"}}, 4);
  EXPECT_EQ(p.layout.ulysses, 4);  // tiny has 4 heads: all Ulysses
  EXPECT_EQ(plan_load({{"model", "tiny"}, {"cfg_parallel", true}}, 4).layout.ulysses, 2);
  EXPECT_EQ(plan_load({{"model", "tiny"}, {"ring", 2}}, 4).layout.ulysses, 2);
  EXPECT_EQ(plan_load({{"model", "tiny"}, {"dp", 2}, {"fsdp", true}}, 2).placement.fsdp, true);
  auto refused = [](const nlohmann::json& j, int world) -> std::string {
    try {
      plan_load(j, world);
    } catch (const Error& e) {
      return e.what();
    }
    return "(accepted)";
  };
  EXPECT_NE(refused({{"model", "tiny"}, {"ulysses", 3}}, 3).find("does not divide the model's 4 attention heads"),
            std::string::npos);
  EXPECT_NE(refused({{"model", "tiny"}, {"ulysses", 2}}, 4).find("needs 2 ranks but the job has 4"), std::string::npos);
  EXPECT_NE(refused({{"model", "/no/such/file.safetensors"}}, 1).find("does not exist"), std::string::npos);
  EXPECT_NE(refused({{"model", "tiny"}, {"ulysess", 2}}, 1).find("unknown field \"ulysess\""), std::string::npos);
  EXPECT_NE(refused({{"model", "tiny"}, {"dp", 0}}, 1).find("\"dp\" must be an integer"), std::string::npos);
  EXPECT_NE(refused({{"model", "tiny"}, {"fsdp", "yes"}}, 1).find("true or false"), std::string::npos);
  EXPECT_NE(refused({{"model", 3}}, 1).find("\"model\" must name"), std::string::npos);
  for (const nlohmann::json& bad : {nlohmann::json(0), nlohmann::json(-2), nlohmann::json("12")})
    EXPECT_NE(refused({{"model", "tiny"}, {"gpu_memory_limit_gib", bad}}, 1).find("positive number of GiB"),
              std::string::npos) << bad.dump();
  LoadPlan capped = plan_load({{"model", "tiny"}, {"gpu_memory_limit_gib", 11.5}}, 1);
  EXPECT_EQ(capped.placement.gpu_memory_limit, static_cast<size_t>(11.5 * 1073741824.0));
  EXPECT_EQ(describe_model(capped, "cuda")["gpu_memory_limit_gib"], 11.5);
  EXPECT_TRUE(describe_model(p, "cpu")["gpu_memory_limit_gib"].is_null());
  EXPECT_NE(refused(nlohmann::json::array(), 1).find("JSON object"), std::string::npos);
  nlohmann::json d = describe_model(p, "cpu");
  EXPECT_EQ(d["layout"]["ulysses"], 4);
  EXPECT_EQ(d["backend"], "cpu");
  EXPECT_TRUE(d["attention"].is_null());
  // The CUDA attention kernel per load (--attention as a field).
  LoadPlan fp8 = plan_load({{"model", "tiny"}, {"attention", "fp8"}}, 1);
  EXPECT_EQ(fp8.attention, "fp8");
  EXPECT_EQ(describe_model(fp8, "cuda")["attention"], "fp8");
  for (const nlohmann::json& bad : {nlohmann::json("fp16"), nlohmann::json(""), nlohmann::json(8)})
    EXPECT_NE(refused({{"model", "tiny"}, {"attention", bad}}, 1).find("\"attention\" must be"), std::string::npos)
        << bad.dump();
}

TEST(ServerListen, ParsesAddressesAndKnowsLoopback) {
  EXPECT_EQ(parse_listen("127.0.0.1:8000").port, 8000);
  EXPECT_EQ(parse_listen("localhost:0").host, "127.0.0.1");
  EXPECT_EQ(parse_listen(":9000").host, "127.0.0.1");
  EXPECT_EQ(parse_listen("9000").port, 9000);
  EXPECT_EQ(parse_listen("[::1]:80").host, "::1");
  EXPECT_EQ(parse_listen("0.0.0.0:80").host, "0.0.0.0");
  EXPECT_THROW(parse_listen("example.com:80"), Error);
  EXPECT_THROW(parse_listen("127.0.0.1:99999"), Error);
  EXPECT_THROW(parse_listen("::1:80"), Error);
  EXPECT_THROW(parse_listen("127.0.0.1:"), Error);
  EXPECT_TRUE(is_loopback("127.0.0.1"));
  EXPECT_TRUE(is_loopback("127.3.2.1"));
  EXPECT_TRUE(is_loopback("::1"));
  EXPECT_FALSE(is_loopback("0.0.0.0"));
  EXPECT_FALSE(is_loopback("::"));
  EXPECT_FALSE(is_loopback("192.168.1.2"));
}

TEST(ServerJobBoard, QueuesCancelsAndCloses) {
  JobBoard board(2, 3);
  std::string a = board.submit(JobKind::Sample, {});
  std::string b = board.submit(JobKind::Load, {});
  EXPECT_THROW(board.submit(JobKind::Sample, {}), Refused);
  EXPECT_EQ(board.status(a)->at("position"), 0);
  EXPECT_EQ(board.status(b)->at("position"), 1);
  EXPECT_TRUE(board.model_change_queued());
  auto job = board.next(std::chrono::milliseconds(10));
  ASSERT_TRUE(job);
  EXPECT_EQ(job->id, a);
  EXPECT_EQ(board.status(b)->at("position"), 1);  // behind the running job
  EXPECT_EQ(board.cancel(b)->at("state"), "cancelled");
  EXPECT_EQ(board.queued(), 0u);
  EXPECT_EQ(board.cancel(a)->at("state"), "running");
  EXPECT_TRUE(job->cancel);
  board.progress(*job, 3, 10);
  uint64_t seen = 0;
  nlohmann::json st;
  ASSERT_TRUE(board.wait_change(a, &seen, std::chrono::milliseconds(0), &st));
  EXPECT_EQ(st["step"], 3);
  std::thread worker([&] { board.finish(*job, JobState::Cancelled, 409, "cancelled while running", {}); });
  while (st["state"] == "running") board.wait_change(a, &seen, std::chrono::milliseconds(100), &st);
  worker.join();
  EXPECT_EQ(st["state"], "cancelled");
  EXPECT_EQ(board.outcome(a)->error_status, 409);
  std::string c = board.submit(JobKind::Sample, {});
  board.close();
  EXPECT_EQ(board.status(c)->at("state"), "cancelled");
  EXPECT_THROW(board.submit(JobKind::Sample, {}), Refused);
  EXPECT_FALSE(board.status("nope"));
}

TEST(ServerSampleRequest, PartsOfTheScheduleAsComfyUIsKSamplerAdvanced) {
  // The 6-step schedule cut at steps [0, 3] with its leftover noise, then [3, end] continued
  // from that sample without added noise; the end cut before the end without leftover noise
  // sets the last sigma to 0, as comfy/samplers.py does.
  const std::vector<double> all = flow_sigmas(6, 5.0);
  Tensor lat = Tensor::zeros({16, 1, 4, 4});
  SampleJob high = plan(body({{"noise", lat}}, {{"steps", 6}, {"end_step", 3}, {"return_with_leftover_noise", true}}));
  EXPECT_EQ(high.sigmas, std::vector<double>(all.begin(), all.begin() + 4));
  EXPECT_TRUE(high.add_noise);
  SampleJob low = plan(body({{"latent", lat}}, {{"steps", 6}, {"start_step", 3}, {"add_noise", false}}));
  EXPECT_EQ(low.sigmas, std::vector<double>(all.begin() + 3, all.end()));
  EXPECT_FALSE(low.add_noise);
  SampleJob cut = plan(body({{"noise", lat}}, {{"steps", 6}, {"end_step", 3}}));
  EXPECT_EQ(cut.sigmas, (std::vector<double>{all[0], all[1], all[2], 0.0}));
  EXPECT_EQ(plan(body({{"noise", lat}}, {{"steps", 6}, {"end_step", 10000}})).sigmas, all);
  // cut_schedule itself: an end cut first, a start at or past the end leaves nothing.
  EXPECT_EQ(cut_schedule(all, 1, 2, true), (std::vector<double>{all[1], all[2]}));
  EXPECT_EQ(cut_schedule(all, 2, 2, false), std::vector<double>{});
  EXPECT_EQ(cut_schedule(all, 6, 10000, false), std::vector<double>{});
  EXPECT_ANY_THROW(cut_schedule(all, -1, 3, false));
  struct Case {
    std::string body, words;
  };
  const Case cases[] = {
      {body({{"latent", lat}}, {{"steps", 6}, {"start_step", 6}, {"add_noise", false}}), "leaves no step"},
      {body({{"noise", lat}}, {{"steps", 6}, {"start_step", -1}}), "\"start_step\""},
      {body({{"noise", lat}}, {{"steps", 6}, {"end_step", "3"}}), "\"end_step\""},
      {body({{"noise", lat}}, {{"steps", 6}, {"add_noise", false}}), "continues from a 'latent'"},
      {body({{"latent", lat}, {"noise", lat}}, {{"steps", 6}, {"add_noise", false}}), "a 'noise' tensor was given"},
      {body({{"noise", lat}}, {{"steps", 6}, {"return_with_leftover_noise", 1}}), "true or false"},
      {body({{"noise", lat}}, {{"steps", 6}, {"expert", "high"}}), "two-expert model"},
  };
  for (const Case& c : cases) EXPECT_NE(refusal(c.body).find(c.words), std::string::npos) << refusal(c.body);
}
