// What a demo-model clip shows, measured from its frames: which colour the background is,
// whether the object's colour is there, and where the object is and how large, frame by
// frame. The rules follow how training/demo/scenes.py draws a scene, so a rendered training
// clip passes every check (training/demo/evaluate.py holds the same measure in numpy and
// verifies that on the renderer's own clips before measuring the engine's):
//
// - a pixel belongs to the colour whose "looks" it is nearest (squared RGB distance in
//   [0, 1]): the colour itself, its texture colour (lighter for dark colours, darker for
//   light ones: stripes, checks, dots) and its gradient (the colour scaled by 0.25..1; that
//   look pays 0.005 so an exact look wins a tie, as mid-grey is both black's texture and
//   white's gradient);
// - the object's pixels are those that belong to the object's colour, lie within 0.15 of
//   it and nearer to it than to any look of the background colour.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"

namespace raylight::test {

// The grammar's parts of a prompt "a|an <colour> <shape> <motion> on a|an <colour> [<style>]
// background" (empty fields when the prompt is not of the grammar).
struct DemoPrompt {
  std::string object, shape, motion, background, style;
};
DemoPrompt parse_demo_prompt(const std::string& prompt);

struct ClipMeasure {
  std::vector<double> colour_share;   // share of all pixels belonging to each colour (kDemoColours order)
  int background_rank = 0;            // 0 when the background colour is the most common one
  double background_share = 0;        // pixels belonging to the background colour, of all
  double object_share = 0;            // object pixels, of all pixels of the clip
  std::vector<double> area;           // object pixels per frame, of the frame
  std::vector<double> centre_x, centre_y;  // object centre per frame in pixels (NaN when absent)
};

// frames: [3, F, H, W] in [-1, 1], as read_video_frames gives them.
ClipMeasure measure_clip(const Tensor& frames, const DemoPrompt& prompt);

// The colour names of the grammar, in the order colour_share uses.
const std::vector<std::string>& demo_colour_names();

// Mean of area[first, first + n).
double mean_area(const ClipMeasure& m, size_t first, size_t n);

// The object's displacement over the clip along x or y: a least-squares line through its
// centres in the frames where it covers at least 0.2% of the frame, times (frames - 1); NaN
// when it shows in fewer than three frames.
double displacement(const ClipMeasure& m, bool along_x);

}  // namespace raylight::test
