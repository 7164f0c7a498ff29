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
    // A split of keys 256..512 in 64-key tiles, of 1000 keys; at most 2 tiles asked for.
    let split = (256, 512);
    assert_eq!(decode(1).settled_tiles(1000, split, 64, 2), 2);
    assert_eq!(decode(1).settled_tiles(1000, split, 64, 8), 4);
    // The last split holds the new key: its tiles up to the one holding key 999 settle.
    let last = (768, 1000);
    assert_eq!(decode(1).settled_tiles(1000, last, 64, 8), 3);
    // Key 960..1000's tile, 40 keys, is whole below the fresh keys only when none is fresh
    // in it: 1001 keys of which 1 fresh leave 960..1000 settled.
    assert_eq!(decode(1).settled_tiles(1001, last, 64, 8), 4);
    // Fresh keys reaching back into the split's first tile: nothing loads early.
    assert_eq!(decode(240).settled_tiles(1000, last, 64, 8), 0);
    assert_eq!(
        decode(DECODE_ALL_KEYS_FRESH).settled_tiles(1000, split, 64, 8),
        0
    );
    // Every key fresh but the first 300: the split's first whole tile (256..320) is not.
    assert_eq!(decode(700).settled_tiles(1000, split, 64, 8), 0);
    assert_eq!(decode(600).settled_tiles(1000, split, 64, 8), 2);
}
