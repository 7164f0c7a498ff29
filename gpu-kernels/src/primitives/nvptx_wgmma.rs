//! Hopper's warpgroup matrix instructions (sm_90a only): `wgmma.mma_async` on shared-memory
//! descriptors, its fence, commit and wait, and the async-proxy fence that makes `cp.async`
//! writes visible to it. `host_wgmma.rs` holds the CPU twins.
//!
//! Built only into the sm_90a PTX (`target_feature = "sm_90a"`): `wgmma` is not part of the
//! portable sm_90 ISA. Layouts (which thread holds which accumulator, the shared-memory layouts a
//! descriptor names) are those of the PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply";
//! the emulator spells them out in `crate::emu::wgmma`.

use core::arch::asm;

/// Generates the `m64n128k16` wrappers for one input type: A and B from shared memory (both
/// K-major), and A from registers with B N-major (transposed).
macro_rules! wgmma_m64n128k16 {
    ($ss:ident, $rs:ident, $ty:literal) => {
        /// Issues `D = A·B (+ D)` for a 64x128x16 tile: A (64x16, K-major) and B (16x128,
        /// K-major: each of the 128 columns' 16 elements contiguous) read from shared memory
        /// through descriptors ([`super::wgmma_desc_sw128`]); `acc` is this thread's part of the
        /// 64x128 accumulator, sixteen `mma`-layout 16x8 tiles over its warp's rows; `accumulate` false ignores its old value. Asynchronous: `acc`
        /// holds the result only after [`wgmma_commit_group`], [`wgmma_wait_group`] and
        /// [`wgmma_hold`].
        ///
        /// # Safety
        /// Both descriptors address operands inside the dynamic shared memory, written before a
        /// [`fence_proxy_async_shared`] and a barrier; the four warps of the warpgroup execute it
        /// together after a [`wgmma_fence`]; nothing reads or writes `acc` until the wait.
        #[inline(always)]
        pub unsafe fn $ss(acc: &mut [[f32; 4]; 16], a: u64, b: u64, accumulate: bool) {
            // SAFETY: the caller guarantees the operands and the warpgroup.
            unsafe {
                asm!(concat!("{{ .reg .pred p; setp.ne.b32 p, {acc}, 0;\n",
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.", $ty, ".", $ty, " {{{d0}, {d1}, {d2}, {d3}, {d4}, {d5}, {d6}, {d7}, {d8}, {d9}, {d10}, {d11}, {d12}, {d13}, {d14}, {d15}, {d16}, {d17}, {d18}, {d19}, {d20}, {d21}, {d22}, {d23}, {d24}, {d25}, {d26}, {d27}, {d28}, {d29}, {d30}, {d31}, {d32}, {d33}, {d34}, {d35}, {d36}, {d37}, {d38}, {d39}, {d40}, {d41}, {d42}, {d43}, {d44}, {d45}, {d46}, {d47}, {d48}, {d49}, {d50}, {d51}, {d52}, {d53}, {d54}, {d55}, {d56}, {d57}, {d58}, {d59}, {d60}, {d61}, {d62}, {d63}}}, {a}, {b}, p, 1, 1, 0, 0; }}"),
                 d0 = inout(reg32) acc[0][0], d1 = inout(reg32) acc[0][1], d2 = inout(reg32) acc[0][2], d3 = inout(reg32) acc[0][3],
                 d4 = inout(reg32) acc[1][0], d5 = inout(reg32) acc[1][1], d6 = inout(reg32) acc[1][2], d7 = inout(reg32) acc[1][3],
                 d8 = inout(reg32) acc[2][0], d9 = inout(reg32) acc[2][1], d10 = inout(reg32) acc[2][2], d11 = inout(reg32) acc[2][3],
                 d12 = inout(reg32) acc[3][0], d13 = inout(reg32) acc[3][1], d14 = inout(reg32) acc[3][2], d15 = inout(reg32) acc[3][3],
                 d16 = inout(reg32) acc[4][0], d17 = inout(reg32) acc[4][1], d18 = inout(reg32) acc[4][2], d19 = inout(reg32) acc[4][3],
                 d20 = inout(reg32) acc[5][0], d21 = inout(reg32) acc[5][1], d22 = inout(reg32) acc[5][2], d23 = inout(reg32) acc[5][3],
                 d24 = inout(reg32) acc[6][0], d25 = inout(reg32) acc[6][1], d26 = inout(reg32) acc[6][2], d27 = inout(reg32) acc[6][3],
                 d28 = inout(reg32) acc[7][0], d29 = inout(reg32) acc[7][1], d30 = inout(reg32) acc[7][2], d31 = inout(reg32) acc[7][3],
                 d32 = inout(reg32) acc[8][0], d33 = inout(reg32) acc[8][1], d34 = inout(reg32) acc[8][2], d35 = inout(reg32) acc[8][3],
                 d36 = inout(reg32) acc[9][0], d37 = inout(reg32) acc[9][1], d38 = inout(reg32) acc[9][2], d39 = inout(reg32) acc[9][3],
                 d40 = inout(reg32) acc[10][0], d41 = inout(reg32) acc[10][1], d42 = inout(reg32) acc[10][2], d43 = inout(reg32) acc[10][3],
                 d44 = inout(reg32) acc[11][0], d45 = inout(reg32) acc[11][1], d46 = inout(reg32) acc[11][2], d47 = inout(reg32) acc[11][3],
                 d48 = inout(reg32) acc[12][0], d49 = inout(reg32) acc[12][1], d50 = inout(reg32) acc[12][2], d51 = inout(reg32) acc[12][3],
                 d52 = inout(reg32) acc[13][0], d53 = inout(reg32) acc[13][1], d54 = inout(reg32) acc[13][2], d55 = inout(reg32) acc[13][3],
                 d56 = inout(reg32) acc[14][0], d57 = inout(reg32) acc[14][1], d58 = inout(reg32) acc[14][2], d59 = inout(reg32) acc[14][3],
                 d60 = inout(reg32) acc[15][0], d61 = inout(reg32) acc[15][1], d62 = inout(reg32) acc[15][2], d63 = inout(reg32) acc[15][3],
                 a = in(reg64) a, b = in(reg64) b, acc = in(reg32) accumulate as u32);
            }
        }

        /// Issues `D = A·B + D` for a 64x128x16 tile with A in registers (this thread's four
        /// packed pairs, the `mma.m16n8k16` A layout over the warp's 16 rows) and B (16x128)
        /// N-major in shared memory: each of the 16 rows' 128 elements in two 64-element
        /// panels. `accumulate` and the asynchrony as for the shared-memory A form; `a` must
        /// stay unchanged until the wait.
        ///
        /// # Safety
        /// As the shared-memory A form.
        #[inline(always)]
        pub unsafe fn $rs(acc: &mut [[f32; 4]; 16], a: [u32; 4], b: u64, accumulate: bool) {
            // SAFETY: the caller guarantees the operand and the warpgroup.
            unsafe {
                asm!(concat!("{{ .reg .pred p; setp.ne.b32 p, {acc}, 0;\n",
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.", $ty, ".", $ty,
                     " {{{d0}, {d1}, {d2}, {d3}, {d4}, {d5}, {d6}, {d7}, {d8}, {d9}, {d10}, {d11}, {d12}, {d13}, {d14}, {d15}, {d16}, {d17}, {d18}, {d19}, {d20}, {d21}, {d22}, {d23}, {d24}, {d25}, {d26}, {d27}, {d28}, {d29}, {d30}, {d31}, {d32}, {d33}, {d34}, {d35}, {d36}, {d37}, {d38}, {d39}, {d40}, {d41}, {d42}, {d43}, {d44}, {d45}, {d46}, {d47}, {d48}, {d49}, {d50}, {d51}, {d52}, {d53}, {d54}, {d55}, {d56}, {d57}, {d58}, {d59}, {d60}, {d61}, {d62}, {d63}}}, {{{a0}, {a1}, {a2}, {a3}}}, {b}, p, 1, 1, 1; }}"),
                 d0 = inout(reg32) acc[0][0], d1 = inout(reg32) acc[0][1], d2 = inout(reg32) acc[0][2], d3 = inout(reg32) acc[0][3],
                 d4 = inout(reg32) acc[1][0], d5 = inout(reg32) acc[1][1], d6 = inout(reg32) acc[1][2], d7 = inout(reg32) acc[1][3],
                 d8 = inout(reg32) acc[2][0], d9 = inout(reg32) acc[2][1], d10 = inout(reg32) acc[2][2], d11 = inout(reg32) acc[2][3],
                 d12 = inout(reg32) acc[3][0], d13 = inout(reg32) acc[3][1], d14 = inout(reg32) acc[3][2], d15 = inout(reg32) acc[3][3],
                 d16 = inout(reg32) acc[4][0], d17 = inout(reg32) acc[4][1], d18 = inout(reg32) acc[4][2], d19 = inout(reg32) acc[4][3],
                 d20 = inout(reg32) acc[5][0], d21 = inout(reg32) acc[5][1], d22 = inout(reg32) acc[5][2], d23 = inout(reg32) acc[5][3],
                 d24 = inout(reg32) acc[6][0], d25 = inout(reg32) acc[6][1], d26 = inout(reg32) acc[6][2], d27 = inout(reg32) acc[6][3],
                 d28 = inout(reg32) acc[7][0], d29 = inout(reg32) acc[7][1], d30 = inout(reg32) acc[7][2], d31 = inout(reg32) acc[7][3],
                 d32 = inout(reg32) acc[8][0], d33 = inout(reg32) acc[8][1], d34 = inout(reg32) acc[8][2], d35 = inout(reg32) acc[8][3],
                 d36 = inout(reg32) acc[9][0], d37 = inout(reg32) acc[9][1], d38 = inout(reg32) acc[9][2], d39 = inout(reg32) acc[9][3],
                 d40 = inout(reg32) acc[10][0], d41 = inout(reg32) acc[10][1], d42 = inout(reg32) acc[10][2], d43 = inout(reg32) acc[10][3],
                 d44 = inout(reg32) acc[11][0], d45 = inout(reg32) acc[11][1], d46 = inout(reg32) acc[11][2], d47 = inout(reg32) acc[11][3],
                 d48 = inout(reg32) acc[12][0], d49 = inout(reg32) acc[12][1], d50 = inout(reg32) acc[12][2], d51 = inout(reg32) acc[12][3],
                 d52 = inout(reg32) acc[13][0], d53 = inout(reg32) acc[13][1], d54 = inout(reg32) acc[13][2], d55 = inout(reg32) acc[13][3],
                 d56 = inout(reg32) acc[14][0], d57 = inout(reg32) acc[14][1], d58 = inout(reg32) acc[14][2], d59 = inout(reg32) acc[14][3],
                 d60 = inout(reg32) acc[15][0], d61 = inout(reg32) acc[15][1], d62 = inout(reg32) acc[15][2], d63 = inout(reg32) acc[15][3],
                 a0 = in(reg32) a[0], a1 = in(reg32) a[1], a2 = in(reg32) a[2], a3 = in(reg32) a[3],
                 b = in(reg64) b, acc = in(reg32) accumulate as u32);
            }
        }
    };
}

wgmma_m64n128k16!(wgmma_m64n128k16_ss_f16, wgmma_m64n128k16_rs_f16, "f16");
wgmma_m64n128k16!(wgmma_m64n128k16_ss_bf16, wgmma_m64n128k16_rs_bf16, "bf16");

/// Orders this warpgroup's earlier register writes (accumulators, A fragments) before the
/// `wgmma` instructions that follow; required before the first `wgmma` of a batch.
#[inline(always)]
pub fn wgmma_fence() {
    // SAFETY: an ordering instruction over the converged warpgroup.
    unsafe { asm!("wgmma.fence.sync.aligned;") };
}

/// Closes the batch of `wgmma` instructions issued since the last commit.
#[inline(always)]
pub fn wgmma_commit_group() {
    // SAFETY: as `wgmma_fence`.
    unsafe { asm!("wgmma.commit_group.sync.aligned;") };
}

/// Waits until at most `N` committed `wgmma` batches are still running.
#[inline(always)]
pub fn wgmma_wait_group<const N: u32>() {
    // SAFETY: as `wgmma_fence`.
    unsafe { asm!("wgmma.wait_group.sync.aligned {n};", n = const N) };
}

/// Marks `acc` as written here: called right after [`wgmma_wait_group`] on each accumulator
/// the waited batch wrote, so that the compiler moves no read of it above the wait (the
/// `wgmma` asm statements "write" their outputs when issued, the hardware at the wait).
#[inline(always)]
pub fn wgmma_hold(acc: &mut [[f32; 4]; 16]) {
    // SAFETY: an empty statement; it only pins the values in place.
    unsafe {
        asm!("// wgmma_hold {0} {1} {2} {3} {4} {5} {6} {7} {8} {9} {10} {11} {12} {13} {14} {15} {16} {17} {18} {19} {20} {21} {22} {23} {24} {25} {26} {27} {28} {29} {30} {31} {32} {33} {34} {35} {36} {37} {38} {39} {40} {41} {42} {43} {44} {45} {46} {47} {48} {49} {50} {51} {52} {53} {54} {55} {56} {57} {58} {59} {60} {61} {62} {63}",
             inout(reg32) acc[0][0], inout(reg32) acc[0][1], inout(reg32) acc[0][2], inout(reg32) acc[0][3], inout(reg32) acc[1][0], inout(reg32) acc[1][1], inout(reg32) acc[1][2], inout(reg32) acc[1][3],
             inout(reg32) acc[2][0], inout(reg32) acc[2][1], inout(reg32) acc[2][2], inout(reg32) acc[2][3], inout(reg32) acc[3][0], inout(reg32) acc[3][1], inout(reg32) acc[3][2], inout(reg32) acc[3][3],
             inout(reg32) acc[4][0], inout(reg32) acc[4][1], inout(reg32) acc[4][2], inout(reg32) acc[4][3], inout(reg32) acc[5][0], inout(reg32) acc[5][1], inout(reg32) acc[5][2], inout(reg32) acc[5][3],
             inout(reg32) acc[6][0], inout(reg32) acc[6][1], inout(reg32) acc[6][2], inout(reg32) acc[6][3], inout(reg32) acc[7][0], inout(reg32) acc[7][1], inout(reg32) acc[7][2], inout(reg32) acc[7][3],
             inout(reg32) acc[8][0], inout(reg32) acc[8][1], inout(reg32) acc[8][2], inout(reg32) acc[8][3], inout(reg32) acc[9][0], inout(reg32) acc[9][1], inout(reg32) acc[9][2], inout(reg32) acc[9][3],
             inout(reg32) acc[10][0], inout(reg32) acc[10][1], inout(reg32) acc[10][2], inout(reg32) acc[10][3], inout(reg32) acc[11][0], inout(reg32) acc[11][1], inout(reg32) acc[11][2], inout(reg32) acc[11][3],
             inout(reg32) acc[12][0], inout(reg32) acc[12][1], inout(reg32) acc[12][2], inout(reg32) acc[12][3], inout(reg32) acc[13][0], inout(reg32) acc[13][1], inout(reg32) acc[13][2], inout(reg32) acc[13][3],
             inout(reg32) acc[14][0], inout(reg32) acc[14][1], inout(reg32) acc[14][2], inout(reg32) acc[14][3], inout(reg32) acc[15][0], inout(reg32) acc[15][1], inout(reg32) acc[15][2], inout(reg32) acc[15][3]);
    }
}

/// As [`wgmma_hold`] for the A fragments of eight register-A `wgmma`s (a k = 128 operand):
/// called after the wait that retires them, it keeps them alive until then, so that the
/// compiler reuses none of their registers while the hardware may still read them (ptxas
/// would serialize every `wgmma` of the kernel, C7513).
#[inline(always)]
pub fn wgmma_hold_a(a: &mut [[u32; 4]; 8]) {
    // SAFETY: an empty statement; it only pins the values in place.
    unsafe {
        asm!("// wgmma_hold_a {0} {1} {2} {3} {4} {5} {6} {7} {8} {9} {10} {11} {12} {13} {14} {15} {16} {17} {18} {19} {20} {21} {22} {23} {24} {25} {26} {27} {28} {29} {30} {31}",
             inout(reg32) a[0][0], inout(reg32) a[0][1], inout(reg32) a[0][2], inout(reg32) a[0][3], inout(reg32) a[1][0], inout(reg32) a[1][1], inout(reg32) a[1][2], inout(reg32) a[1][3],
             inout(reg32) a[2][0], inout(reg32) a[2][1], inout(reg32) a[2][2], inout(reg32) a[2][3], inout(reg32) a[3][0], inout(reg32) a[3][1], inout(reg32) a[3][2], inout(reg32) a[3][3],
             inout(reg32) a[4][0], inout(reg32) a[4][1], inout(reg32) a[4][2], inout(reg32) a[4][3], inout(reg32) a[5][0], inout(reg32) a[5][1], inout(reg32) a[5][2], inout(reg32) a[5][3],
             inout(reg32) a[6][0], inout(reg32) a[6][1], inout(reg32) a[6][2], inout(reg32) a[6][3], inout(reg32) a[7][0], inout(reg32) a[7][1], inout(reg32) a[7][2], inout(reg32) a[7][3]);
    }
}

/// `fence.proxy.async.shared::cta`: makes this thread's shared-memory writes (`st.shared`,
/// `cp.async` once waited for) visible to the async proxy that `wgmma` reads through. Call after
/// the copy wait and before the barrier that publishes the tile.
#[inline(always)]
pub fn fence_proxy_async_shared() {
    // SAFETY: a memory-ordering fence with no operands.
    unsafe { asm!("fence.proxy.async.shared::cta;") };
}
