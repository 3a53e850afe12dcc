"""The ablation report from a results.json: emulated arms are marked and explained; the metrics
the claims name get columns; a per-claim baseline shows in the claims table."""
import json

from gptlab.lab.report import EMULATION_NOTE, write_ablation_report


def _run(arm, seed, loss, emulated, **extra):
    return {"arm": arm, "seed": seed, "pack": f"/d/{arm}", "final_loss": loss, "bpb": loss / 2, "max_logit": 3.0,
            "spikes": 0, "rollbacks": 0, "skipped_batches": 0, "overflow_skips": int(emulated), "diverged": 0.0,
            "tokens_per_s": 1000.0, "tokens": 100, "steps": 10, "params": 1234, "precision": "fp16" if emulated else "fp32",
            "emulated": emulated, "pack_tokens": 5000 if arm == "a" else 700, **extra}


def test_emulated_arms_are_marked_and_claim_metrics_get_columns(tmp_path):
    runs = [_run("a", s, 5.0 + s / 10, False, memorisation=0.1) for s in (1, 2)]
    runs += [_run("b", s, 5.5 + s / 10, True, memorisation=0.4) for s in (1, 2)]
    claim = {"id": "C4", "claim": "fp16 costs", "arm": "b", "baseline": "a", "metric": "memorisation",
             "direction": "higher", "min_effect": 0.01, "effect": 0.3, "low": 0.3, "high": 0.3,
             "verdict": "supported", "seeds": 2, "seeds_to_decide": None}
    doc = {"name": "t", "baseline": "a", "arms": ["a", "b"], "seeds": 2, "scale": "tiny", "warnings": [],
           "overrides": {"common": {}, "a": {}, "b": {}}, "description": "", "planned": "", "runs": runs,
           "claims": [claim]}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    page = write_ablation_report(tmp_path).read_text()
    assert "fp16 (emulated)" in page and EMULATION_NOTE.split(":")[0] in page
    assert "accumulate in fp32" in page and "memorisation" in page and "pack tokens" in page
    assert "0.400" in page            # b's memorisation, in its own column
    doc["runs"] = [dict(r, emulated=False) for r in runs]
    (tmp_path / "results.json").write_text(json.dumps(doc))
    page = write_ablation_report(tmp_path).read_text()
    assert "(emulated)" not in page and "accumulate in fp32" not in page
