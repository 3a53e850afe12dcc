#!/usr/bin/env bash
# The GPU suite: training throughput against a plain nanoGPT-like loop, GPU determinism
# (two runs and a kill + resume, bitwise), and an fp16 run with a real loss scale.
#
#   OUT=/some/dir bash bench/gpu_suite.sh              # one H100/H200: under 8 minutes
#   OUT=/tmp/smoke bash bench/gpu_suite.sh --cpu-smoke  # the same steps, tiny, on the CPU
#
# Runs gptlab from this working tree (PYTHONPATH=src) with the machine's own python3 (or
# $PYTHON); needs torch, safetensors, numpy. Writes under $OUT: env.json, throughput/*.json,
# determinism.json, fp16.json, logs/*.log, and summary.json + summary.md (also printed).
# Every section has its own time limit, and sections run in priority order under one
# overall budget ($BUDGET_S, default 420 s of the 480): a section that no longer fits is
# recorded as skipped, never cut short in its warm-up. ONLY="name name" runs just those
# sections (names as in logs/), e.g. to rerun what failed.
set -uo pipefail

MODE=gpu
for arg in "$@"; do
  case "$arg" in
    --cpu-smoke) MODE=cpu ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "gpu_suite.sh: unknown argument $arg (use --cpu-smoke or nothing)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
PY="${PYTHON:-python3}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT/throughput" "$OUT/logs"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export GPTLAB_TENSORBOARD=0 GPTLAB_PROGRESS=0 PYTHONUNBUFFERED=1
BUDGET_S="${BUDGET_S:-420}"
START=$SECONDS
echo "gpu_suite: mode $MODE, output $OUT, budget ${BUDGET_S}s"

# ----------------------------------------------------------------------------- environment

# Training never touches zstandard (only the data stages read .zst shards), but the CLI imports
# it through gptlab.advise -> gptlab.data.documents. Where it is missing, a stub that raises on
# use lets `gptlab train` start; env.json records that it was used.
ZSTD_STUB=0
if ! "$PY" -c "import zstandard" 2>/dev/null; then
  if [[ -n "${GPTLAB_WHEELS:-}" ]] && "$PY" -m pip install -q --no-index --find-links "$GPTLAB_WHEELS" \
        --target "$WORK/site" zstandard >"$OUT/logs/wheels.log" 2>&1; then
    export PYTHONPATH="$WORK/site:$PYTHONPATH"
  else
    mkdir -p "$WORK/stubs/zstandard"
    cat >"$WORK/stubs/zstandard/__init__.py" <<'EOF'
"""Stand-in for a missing zstandard: importable, fails on use (training never uses it)."""
class ZstdError(Exception):
    pass


def _missing(*args, **kwargs):
    raise ImportError("zstandard is not installed here (a stub stands in for imports only)")


ZstdCompressor = ZstdDecompressor = _missing
EOF
    export PYTHONPATH="$WORK/stubs:$PYTHONPATH"
    ZSTD_STUB=1
  fi
fi

"$PY" - "$OUT/env.json" "$MODE" "$ZSTD_STUB" <<'EOF' 2>&1 | tee "$OUT/logs/env.log"
import importlib, json, platform, subprocess, sys
out, mode, stub = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
env = {"mode": mode, "python": platform.python_version(), "zstandard_stub": stub, "imports": {}}
try:
    import torch
    env["torch"] = torch.__version__
    env["cuda"] = torch.version.cuda
    env["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["bf16"] = torch.cuda.is_bf16_supported()
except Exception as e:
    env["torch"] = f"import failed: {e}"
for mod in ("zstandard", "safetensors", "numpy", "transformers", "gptlab.model", "gptlab.train.loop",
            "gptlab.cli"):
    try:
        importlib.import_module(mod)
        env["imports"][mod] = "ok"
    except Exception as e:
        env["imports"][mod] = f"{type(e).__name__}: {e}"
try:
    env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,clocks.max.sm,power.limit",
                                        "--format=csv,noheader"], capture_output=True, text=True,
                                       timeout=20).stdout.strip()
except Exception as e:
    env["nvidia_smi"] = f"unavailable: {e}"
json.dump(env, open(out, "w"), indent=1)
print(json.dumps(env, indent=1))
EOF

if [[ "$MODE" == gpu ]] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_suite: no CUDA device here (use --cpu-smoke to try the script on a CPU)" >&2
  exit 3
fi

# ----------------------------------------------------------------------------- helpers

SKIPPED=()
# fits SECONDS: is there room for a section that may take this long?
fits() { (( SECONDS - START + $1 <= BUDGET_S )); }

# run NAME LIMIT_S CMD...: one section, its output in logs/NAME.log, skipped when out of budget.
# A shell function as CMD runs as is, each of its commands under `to` (the section's time left).
SECTION_END=0
to() { local left=$(( SECTION_END - SECONDS )); timeout --signal=KILL $(( left > 1 ? left : 1 )) "$@"; }
run() {
  local name="$1" limit="$2"; shift 2
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then return 0; fi
  if ! fits "$limit"; then
    echo "gpu_suite: skip $name (needs up to ${limit}s, $(( BUDGET_S - SECONDS + START ))s left)"
    SKIPPED+=("$name")
    return 0
  fi
  local t0=$SECONDS
  echo "gpu_suite: $name (limit ${limit}s) ..."
  SECTION_END=$(( SECONDS + limit ))
  if declare -F "$1" >/dev/null; then
    "$@" >"$OUT/logs/$name.log" 2>&1
  else
    timeout --signal=KILL "$limit" "$@" >"$OUT/logs/$name.log" 2>&1
  fi
  local rc=$?
  echo "gpu_suite: $name rc=$rc in $(( SECONDS - t0 ))s"
  tail -n 4 "$OUT/logs/$name.log" | sed 's/^/    /'
  echo "{\"name\": \"$name\", \"rc\": $rc, \"seconds\": $(( SECONDS - t0 ))}" >>"$OUT/sections.jsonl"
}

if [[ "$MODE" == gpu ]]; then
  DEV_EAGER=(--device cuda --precision bf16 --vocab 50304)
  DEV=("${DEV_EAGER[@]}" --compile)
  STEPS=(--warmup 5 --steps 20 --rounds 1)
  S124=(--shape gpt2-124m) S774=(--shape gpt2-774m)
  T_SMALL=90 T_BIG=170 T_DET=150 T_FP16=90
  DET_MODEL=(model.n_layer=4 model.n_embd=256 model.n_head=4 train.batch_size=16 train.max_steps=30
             train.checkpoint_every=10 train.precision=bf16)
  DET_KILL_AT=15 DET_SEQ=128 DET_VOCAB=512
  FP16_MODEL=(model.n_layer=4 model.n_embd=256 model.n_head=4 train.batch_size=16 train.max_steps=60)
else
  DEV_EAGER=(--device cpu --precision fp32 --vocab 512)
  DEV=("${DEV_EAGER[@]}")
  STEPS=(--warmup 1 --steps 2 --rounds 1)
  S124=(--shape cpu-tiny) S774=(--shape cpu-tiny)
  T_SMALL=120 T_BIG=120 T_DET=240 T_FP16=120
  DET_MODEL=(model.n_layer=1 model.n_embd=32 model.n_head=2 train.batch_size=8 train.max_steps=12
             train.checkpoint_every=3 train.threads=1)
  DET_KILL_AT=7 DET_SEQ=32 DET_VOCAB=96
  FP16_MODEL=(model.n_layer=1 model.n_embd=32 model.n_head=2 train.batch_size=8 train.max_steps=12
              train.threads=1)
fi
# GPT-3 as nanoGPT's bench has it: no biases anywhere.
GPT3=(--preset gpt3 --set model.bias=false --set model.norm_bias=false)
PALM=(--preset palm)
TP=("$PY" bench/train_throughput.py)
STEP=(--engine step --compile-mode regional)
j() { echo "--json $OUT/throughput/$1.json"; }

# ----------------------------------------------------------------------------- data for the CLI runs

# A small pack in gptlab.pack's format, from a deterministic token process with structure
# (a noisy repeating walk), so that the loss has something to learn; no harvest needed.
"$PY" - "$WORK/pack" "$DET_SEQ" "$DET_VOCAB" <<'EOF' >"$OUT/logs/pack.log" 2>&1
import json, sys
from pathlib import Path
import numpy as np
from gptlab.manifest import write_manifest
folder, T, V = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
folder.mkdir(parents=True)
rng = np.random.default_rng(0)
n_seq = 512
steps = rng.integers(1, 4, size=n_seq * (T + 1))
noise = rng.random(n_seq * (T + 1)) < 0.1
tokens = np.cumsum(steps) % V
tokens[noise] = rng.integers(0, V, size=int(noise.sum()))
tokens.astype(np.uint16).tofile(folder / "tokens-00000.bin")
np.save(folder / "unigram.npy", np.bincount(tokens, minlength=V).astype(np.int64))
(folder / "index.json").write_text(json.dumps({
    "seq_len": T, "dtype": "uint16", "n_sequences": n_seq, "n_tokens": n_seq * (T + 1), "vocab_size": V,
    "eos_id": 0, "shards": [{"file": "tokens-00000.bin", "first_sequence": 0, "n_sequences": n_seq}]}))
# The manifest that `gptlab train` checks its upstream stage by.
write_manifest(folder, stage="pack", key=f"synthetic-{n_seq}-{T}-{V}",
               outputs=["tokens-00000.bin", "unigram.npy", "index.json"],
               config={"pack": {"synthetic": True, "seq_len": T, "vocab_size": V}})
print(f"pack: {n_seq} sequences of {T + 1} tokens, vocab {V}")
EOF

# ----------------------------------------------------------------------------- determinism (CLI)

determinism() {
  local cli=(-m gptlab.cli train --data "$WORK/pack")
  local args=("${DET_MODEL[@]}" train.deterministic=true train.log_every=1000 train.warmup_steps=5)
  to "$PY" "${cli[@]}" --out "$WORK/det_a" "${args[@]}" || return 1
  to "$PY" "${cli[@]}" --out "$WORK/det_b" "${args[@]}" || return 1
  "$PY" "${cli[@]}" --out "$WORK/det_k" "${args[@]}" &
  local pid=$! n=0
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < SECTION_END )); do   # kill it between checkpoints
    n=$(wc -l 2>/dev/null <"$WORK/det_k/metrics.jsonl" || echo 0)
    (( n >= DET_KILL_AT )) && break
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  echo "killed at $n logged steps"
  to "$PY" "${cli[@]}" --out "$WORK/det_k" --resume "${args[@]}" || return 1
  "$PY" - "$WORK" "$OUT/determinism.json" "$n" <<'EOF'
import json, sys
from pathlib import Path
import torch
from safetensors.torch import load_file
from gptlab.checkpoint import latest_valid
work, out, killed_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def weights(run):
    return load_file(str(latest_valid(work / run / "checkpoints") / "model.safetensors"))
def losses(run):
    return [json.loads(line)["loss"] for line in (work / run / "metrics.jsonl").read_text().splitlines()]
a, b, k = weights("det_a"), weights("det_b"), weights("det_k")
same = lambda x, y: x.keys() == y.keys() and all(torch.equal(x[n], y[n]) for n in x)
res = {"two_runs_bitwise_equal_weights": same(a, b), "kill_resume_bitwise_equal_weights": same(a, k),
       "two_runs_equal_losses": losses("det_a") == losses("det_b"),
       "kill_resume_equal_losses": losses("det_a") == losses("det_k"), "killed_after_logged_steps": killed_at,
       "resumed": (work / "det_k" / "manifest.json").exists(), "final_loss": losses("det_a")[-1],
       "max_abs_diff_two_runs": max((a[n].float() - b[n].float()).abs().max().item() for n in a)}
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
sys.exit(0 if res["two_runs_bitwise_equal_weights"] and res["kill_resume_bitwise_equal_weights"] else 1)
EOF
}

# The bare step (chunked loss, fused AdamW on CUDA) twice with the determinism switches.
step_determinism() {
  local args=("${TP[@]}" "${S124[@]}" --engine step "${DEV_EAGER[@]}" --warmup 1 --steps 5 --rounds 1
              --no-reference --deterministic --batch 4 "${GPT3[@]}")
  to "${args[@]}" --json "$OUT/throughput/det_step_a.json" || return 1
  to "${args[@]}" --json "$OUT/throughput/det_step_b.json" || return 1
  "$PY" - "$OUT/throughput" <<'EOF'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
a, b = (json.loads((d / f"det_step_{x}.json").read_text())["gptlab"]["weights_sha256"] for x in "ab")
print(f"step engine, deterministic: {'bitwise equal' if a == b else 'DIFFERENT'} weights ({a[:12]} / {b[:12]})")
sys.exit(0 if a == b else 1)
EOF
}

# ----------------------------------------------------------------------------- fp16 (OPT), real loss scale

fp16() {
  to "$PY" -m gptlab.cli train --data "$WORK/pack" --out "$WORK/fp16" model.preset=opt "${FP16_MODEL[@]}" \
      train.precision=fp16 train.log_every=1000 train.warmup_steps=5 train.ramp=none || return 1
  "$PY" - "$WORK/fp16" "$OUT/fp16.json" <<'EOF'
import json, math, sys
from pathlib import Path
rows = [json.loads(line) for line in (Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()]
scales = [r.get("loss_scale") for r in rows]
res = {"steps": len(rows), "first_loss": rows[0]["loss"], "final_loss": rows[-1]["loss"],
       "all_finite_after_skips": all(math.isfinite(r["loss"]) for r in rows),
       "loss_scale_first": scales[0], "loss_scale_last": scales[-1], "loss_scale_min": min(scales),
       "skipped_steps": sum(r.get("skipped_step", 0) for r in rows),
       "loss_decreased": rows[-1]["loss"] < rows[0]["loss"]}
json.dump(res, open(sys.argv[2], "w"), indent=1)
print(json.dumps(res, indent=1))
sys.exit(0 if res["loss_scale_first"] is not None and res["loss_decreased"] else 1)
EOF
}

# ----------------------------------------------------------------------------- the sections, by priority

run 124m_b16_gpt3 "$T_SMALL" "${TP[@]}" "${S124[@]}" "${DEV[@]}" "${STEPS[@]}" "${STEP[@]}" "${GPT3[@]}" $(j 124m_b16_gpt3)
run 124m_b16_palm "$T_SMALL" "${TP[@]}" "${S124[@]}" "${DEV[@]}" "${STEPS[@]}" "${STEP[@]}" "${PALM[@]}" \
    --no-reference $(j 124m_b16_palm)
run determinism "$T_DET" determinism
run fp16_opt "$T_FP16" fp16
run 124m_b64_gpt3 "$T_SMALL" "${TP[@]}" "${S124[@]}" --batch 64 "${DEV[@]}" "${STEPS[@]}" "${STEP[@]}" "${GPT3[@]}" \
    $(j 124m_b64_gpt3)
run 124m_b64_palm "$T_SMALL" "${TP[@]}" "${S124[@]}" --batch 64 "${DEV[@]}" "${STEPS[@]}" "${STEP[@]}" "${PALM[@]}" \
    --no-reference $(j 124m_b64_palm)
run 774m_b8_gpt3 "$T_BIG" "${TP[@]}" "${S774[@]}" --batch 8 "${DEV[@]}" "${STEPS[@]}" "${STEP[@]}" "${GPT3[@]}" \
    $(j 774m_b8_gpt3)
run 774m_b8_palm "$T_BIG" "${TP[@]}" "${S774[@]}" --batch 8 "${DEV[@]}" "${STEPS[@]}" "${STEP[@]}" "${PALM[@]}" \
    --no-reference $(j 774m_b8_palm)
run step_determinism "$T_SMALL" step_determinism
# Variants at 124M/B16 that decide the loop's defaults: today's loop, plain loss, full-graph compile.
run 124m_b16_gpt3_loop "$T_SMALL" "${TP[@]}" "${S124[@]}" "${DEV[@]}" "${STEPS[@]}" --engine loop "${GPT3[@]}" \
    --no-reference $(j 124m_b16_gpt3_loop)
run 124m_b16_gpt3_plainloss "$T_SMALL" "${TP[@]}" "${S124[@]}" "${DEV[@]}" "${STEPS[@]}" "${STEP[@]}" --loss plain \
    "${GPT3[@]}" --no-reference $(j 124m_b16_gpt3_plainloss)
run 124m_b16_gpt3_fullgraph "$T_SMALL" "${TP[@]}" "${S124[@]}" "${DEV[@]}" "${STEPS[@]}" --engine step \
    --compile-mode full "${GPT3[@]}" --no-reference $(j 124m_b16_gpt3_fullgraph)
# ALiBi (BLOOM) on SDPA with a bias, then on FlexAttention (last: the budget may not reach them).
run 124m_b16_bloom_sdpa "$T_SMALL" "${TP[@]}" "${S124[@]}" "${DEV[@]}" "${STEPS[@]}" "${STEP[@]}" --preset bloom \
    --no-reference $(j 124m_b16_bloom_sdpa)
run 124m_b16_bloom_flex "$T_SMALL" "${TP[@]}" "${S124[@]}" "${DEV[@]}" "${STEPS[@]}" "${STEP[@]}" --preset bloom \
    --attention flex --no-reference $(j 124m_b16_bloom_flex)

# ----------------------------------------------------------------------------- summary

"$PY" - "$OUT" "$MODE" "$(( SECONDS - START ))" "${SKIPPED[@]}" <<'EOF'
import json, sys
from pathlib import Path
out, mode, elapsed, skipped = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
TARGETS = {"124m_b16": 0.50, "124m_b64": 0.55, "774m_b8": 0.55}   # issue 17's MFU targets
rows, table = [], []
for f in sorted((out / "throughput").glob("*.json")):
    r = json.loads(f.read_text())
    g, ref = r["gptlab"], r.get("reference")
    key = "_".join(f.stem.split("_")[:2])
    main_run = len(f.stem.split("_")) == 3 and r["preset"] in ("gpt3", "palm")   # not the variants
    target = TARGETS.get(key) if mode == "gpu" and main_run else None
    row = {"name": f.stem, "preset": r["preset"], "B": r["B"], "T": r["T"], "L": r["L"], "d": r["d"],
           "engine": r["engine"], "loss": r["loss"], "compile": r["compile_mode"] if r["compile"] else "off",
           "ms_per_iter": g["ms_per_iter"], "tokens_per_s": g["tokens_per_s"], "mfu": g["mfu"],
           "peak_mem_gib": g["peak_mem_gib"], "ref_ms_per_iter": ref and ref["ms_per_iter"],
           "ref_mfu": ref and ref["mfu"], "ratio": r.get("ratio_best_vs_best"), "target_mfu": target,
           "met": (g["mfu"] >= target) if target and g["mfu"] is not None else None}
    rows.append(row)
fmt = lambda v, spec: "-" if v is None else format(v, spec)
lines = ["| run | preset | L×d | B | engine/loss/compile | ms/iter | tok/s | MFU | mem GiB | ref ms/iter | ref MFU "
         "| ours/ref | target | met |", "|" + "---|" * 14]
for r in rows:
    lines.append(f"| {r['name']} | {r['preset']} | {r['L']}×{r['d']} | {r['B']} | {r['engine']}/{r['loss']}/"
                 f"{r['compile']} | {fmt(r['ms_per_iter'], '.1f')} | {fmt(r['tokens_per_s'], ',.0f')} | "
                 f"{fmt(r['mfu'], '.1%')} | {fmt(r['peak_mem_gib'], '.1f')} | {fmt(r['ref_ms_per_iter'], '.1f')} | "
                 f"{fmt(r['ref_mfu'], '.1%')} | {fmt(r['ratio'], '.2f')} | {fmt(r['target_mfu'], '.0%')} | "
                 f"{'-' if r['met'] is None else ('yes' if r['met'] else 'NO')} |")
summary = {"mode": mode, "elapsed_s": elapsed, "skipped": skipped, "throughput": rows}
for name in ("env", "determinism", "fp16"):
    p = out / f"{name}.json"
    summary[name] = json.loads(p.read_text()) if p.exists() else None
sections = out / "sections.jsonl"
summary["sections"] = [json.loads(l) for l in sections.read_text().splitlines()] if sections.exists() else []
det, fp = summary["determinism"], summary["fp16"]
lines.append("")
lines.append("determinism: " + ("not run" if det is None else
             f"two runs bitwise equal: {det['two_runs_bitwise_equal_weights']}; kill at step "
             f"{det['killed_after_logged_steps']} + resume bitwise equal: {det['kill_resume_bitwise_equal_weights']}"))
lines.append("fp16 (opt): " + ("not run" if fp is None else
             f"loss {fp['first_loss']:.3f} -> {fp['final_loss']:.3f}, loss scale {fp['loss_scale_first']} -> "
             f"{fp['loss_scale_last']} (min {fp['loss_scale_min']}), {fp['skipped_steps']} skipped steps"))
failed = [s["name"] for s in summary["sections"] if s["rc"] != 0]
lines.append(f"sections failed: {', '.join(failed) or 'none'}; skipped (budget): {', '.join(skipped) or 'none'}; "
             f"{elapsed} s in all")
(out / "summary.json").write_text(json.dumps(summary, indent=1))
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
