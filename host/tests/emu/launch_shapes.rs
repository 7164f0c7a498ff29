//! The emulated GPU tests' small row shapes (`tests/gpu_vs_cpu.rs`, `ROW_CASES_SMALL`) take
//! both row-kernel layouts: one-warp rows packed 4 to a block, and one multi-warp block per row;
//! and the decode-attention blocks load early only the tiles that hold no fresh key.

use nano_infer_kernels::launch_shape;
use nano_infer_kernels::params::{DECODE_ALL_KEYS_FRESH, DecodeAttnParams};

#[test]
fn small_row_cases_take_both_row_layouts() {
    let one_warp = launch_shape::rows(5, 576).unwrap();
    assert_eq!((one_warp.block, one_warp.grid.0), ((32, 4, 1), 2));
    let multi = launch_shape::rows(3, 4099).unwrap();
    assert_eq!((multi.block, multi.grid.0), ((160, 1, 1), 3));
    assert_eq!(launch_shape::rows(2, 40968).unwrap().block, (512, 1, 1));
}

/// Decode-attention parameters with `fresh_keys` set (the rest does not enter the tile count).
fn decode(fresh_keys: u32) -> DecodeAttnParams {
    DecodeAttnParams {
        fresh_keys,
        ..launch_shape::decode_attention(32, 8, 128, 1000, 1000, 0.1, 132, true).params
    }
}

#[test]
fn settled_tiles_stop_before_the_fresh_keys() {
    // 1000 keys in 16 tiles of 64 (the last one 40 keys), dealt round-robin to 4 splits: split
    // 1 takes tiles 1, 5, 9, 13; split 3 takes 3, 7, 11, 15 (the last, keys 960..1000).
    let (one, last) = ((1, 4), (3, 4));
    assert_eq!(decode(1).settled_tiles(1000, one, 64, 2), 2);
    assert_eq!(decode(1).settled_tiles(1000, one, 64, 8), 4);
    // The last split holds the new key: its tiles before the one holding key 999 settle.
    assert_eq!(decode(1).settled_tiles(1000, last, 64, 8), 3);
    // The short last tile is settled when none of its keys is fresh: 1000 keys, none fresh.
    assert_eq!(decode(0).settled_tiles(1000, last, 64, 8), 4);
    // 240 fresh keys, from key 760 (inside tile 11) on: split 3 keeps tiles 3 and 7, split 1
    // tiles 1, 5, 9.
    assert_eq!(decode(240).settled_tiles(1000, last, 64, 8), 2);
    assert_eq!(decode(240).settled_tiles(1000, one, 64, 8), 3);
    assert_eq!(
        decode(DECODE_ALL_KEYS_FRESH).settled_tiles(1000, one, 64, 8),
        0
    );
    // Every key fresh but the first 100: only tile 0 (split 0's first) is settled.
    assert_eq!(decode(900).settled_tiles(1000, (0, 4), 64, 8), 1);
    assert_eq!(decode(900).settled_tiles(1000, one, 64, 8), 0);
}
