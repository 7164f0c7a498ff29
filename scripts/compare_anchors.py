#!/usr/bin/env python3
"""Prints NanoInfer's GPU benchmark beside the torch anchors measured in the same job.

    python3 scripts/compare_anchors.py nano.json anchors.json

`nano.json` comes from `cargo bench --bench gpu_kernels -- --json nano.json`, `anchors.json` from
`shared/anchors/torch_anchors.py --json anchors.json`. Each row: ours, the anchor, ours/anchor,
and ours as a fraction of the device-to-device copy bandwidth measured by us in the same job.
"""
import json
import sys


def main():
    ours, anchors = (json.load(open(p)) for p in sys.argv[1:3])
    copy = ours.get("nano_copy_1GiB_TBps")
    print(f"device: ours {ours.get('device')} | anchors {anchors.get('device')} (torch {anchors.get('torch')})")
    print(f"copy 1 GiB: ours {copy:.3f} TB/s, torch {anchors.get('copy_1GiB_TBps', float('nan')):.3f} TB/s")
    print(f"{'kernel':55s} {'ours':>9s} {'anchor':>9s} {'ratio':>6s} {'%copy':>6s}  anchor key")
    for key, value in sorted(ours.items()):
        if not key.startswith("nano_") or key.endswith("_ms") or "copy_1GiB" in key:
            continue
        base = key[len("nano_"):]
        stem, unit = base.rsplit("_", 1)
        if stem.startswith("gemm") and unit == "TBps" and not stem.startswith("gemm_f16_M1_"):
            continue
        candidates = [f"{stem}_compiled_{unit}", f"{stem}_eager_{unit}", f"{stem}_{unit}"]
        if stem.startswith("gemv_f16_M1_"):  # our GEMV against cuBLAS at M = 1
            candidates = [stem.replace("gemv_f16", "gemm_f16") + "_" + unit]
        if stem.startswith("flash3_"):  # FlashAttention-3 against the same SDPA-flash rows
            candidates = [c.replace("flash3_", "flash_", 1) for c in candidates]
        if stem.startswith("rope_interleaved"):
            candidates = [c.replace("rope_interleaved", "rope") for c in candidates]
        anchor_key = next((c for c in candidates if c in anchors), None)
        anchor = anchors.get(anchor_key) if anchor_key else None
        ratio = f"{value / anchor:6.2f}" if anchor else "     -"
        frac = f"{value / copy:6.1%}" if unit == "TBps" and copy else "     -"
        a = f"{anchor:9.3f}" if anchor else "        -"
        print(f"{base:55s} {value:9.3f} {a} {ratio} {frac}  {anchor_key or ''}")


if __name__ == "__main__":
    main()
