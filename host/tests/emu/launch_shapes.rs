//! The emulated GPU tests' small row shapes (`tests/gpu_vs_cpu.rs`, `ROW_CASES_SMALL`) take
//! both row-kernel layouts: one-warp rows packed 4 to a block, and one multi-warp block per row.

use nano_infer_kernels::launch_shape;

#[test]
fn small_row_cases_take_both_row_layouts() {
    let one_warp = launch_shape::rows(5, 576).unwrap();
    assert_eq!((one_warp.block, one_warp.grid.0), ((32, 4, 1), 2));
    let multi = launch_shape::rows(3, 4099).unwrap();
    assert_eq!((multi.block, multi.grid.0), ((160, 1, 1), 3));
    assert_eq!(launch_shape::rows(2, 40968).unwrap().block, (512, 1, 1));
}
