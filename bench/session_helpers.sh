# Sourced by the session scripts (bench/*_session.sh). Needs $work (logs), $out (summary.txt),
# $b (the default build's binaries) and a `note` function from the caller.

# One gtest binary's run, its pass/fail lines and first failures in the summary.
# Usage: gtest LABEL TIMEOUT_S BINARY [gtest arguments...]
gtest() {
  local label=$1 limit=$2 bin=$3; shift 3
  timeout "$limit" "$b/$bin" "$@" >"$work/$label.log" 2>&1
  note "$label: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$work/$label.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]|Failure|Which is|rel_err|worst_lse|Trace" "$work/$label.log" | head -16 | tee -a "$out/summary.txt"
}

# One Wan 14B fp8 forward bench with nvidia-smi's power and SM clock sampled through it.
# Usage: forward_power LABEL BUILD_DIR [ENV=VALUE...] -- [raylight bench arguments...]
forward_power() {
  local label=$1 bin=$2; shift 2
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  nvidia-smi --query-gpu=power.draw,clocks.sm --format=csv,noheader,nounits -lms 250 >"$work/smi_$label.csv" 2>/dev/null &
  local smi=$!
  env "${envs[@]}" timeout 250 "$bin/raylight" bench --model wan-14b --dtype fp8 --attention fp8 --fp8-accuracy off \
    --runs "${FWD_RUNS:-2}" --warmup 1 "$@" >"$work/forward_$label.log" 2>&1
  local rc=$?
  kill $smi 2>/dev/null; wait $smi 2>/dev/null
  # Mean power and clock over the samples drawing over 500 W (the forwards, not the loading).
  local hot
  hot=$(awk -F', *' '$1 > 500 {p += $1; c += $2; n++} END {if (n) printf "%.0f W, %.0f MHz over %d samples", p / n, c / n, n}' \
    "$work/smi_$label.csv")
  note "== $label (exit $rc): $(grep -E '^forward:' "$work/forward_$label.log") [$hot]"
  grep -E "^breakdown" "$work/forward_$label.log" | cut -c1-220 | tee -a "$out/summary.txt"
}

# forward_power for one variant given as "ENV=V,ENV=V" ("" for none); BIN=dir among them takes
# that build's raylight instead of $b (an A/B of two builds).
# Usage: forward_variant LABEL ASSIGNMENTS [raylight bench arguments...]
forward_variant() {
  local label=$1 envs=$2 bin=$b e; shift 2
  local assigns=()
  for e in ${envs//,/ }; do
    if [[ $e == BIN=* ]]; then bin=${e#BIN=}; else assigns+=("$e"); fi
  done
  forward_power "$label" "$bin" "${assigns[@]}" -- "$@"
}

# The steps a later session's script does not run itself, handed to bench/twelfth_session.sh
# with the same $out and $work (it tars the logs); with none, the logs tarred here.
# Usage: run_twelfth_steps [step...]
run_twelfth_steps() {
  if [ $# -gt 0 ]; then
    OUT=$out WORK=$work bash bench/twelfth_session.sh "$@"
  else
    tar -C "$work" -czf "$out/logs.tar.gz" . 2>/dev/null
  fi
}
