//! The emulated device below the public API: launcher behaviour `functional` never asks for
//! (in-place maps, an embedding id past the vocabulary), and the launch step's own errors.
//! The kernels themselves are checked through the public API in `tests/gpu_vs_cpu.rs`.

use cudarc::driver::LaunchConfig;
use nano_infer_kernels::emu::EmuError;

use crate::backend::cpu::reference as R;
use crate::backend::cpu::testing::assert_close;
use crate::backend::cuda::{CudaBackend, CudaStorage};
use crate::error::Error;
use crate::tensor::{CpuStorage, DType};

/// `values` rounded to `dt`, on the device, and the rounded values.
fn upload(be: &CudaBackend, values: Vec<f32>, dt: DType) -> (CudaStorage, Vec<f32>) {
    let cpu = CpuStorage::from_f32(values, dt);
    let rounded = (0..cpu.len()).map(|i| cpu.get_f32(i)).collect();
    (be.upload(cpu.as_bytes(), dt).unwrap(), rounded)
}

fn download(s: &CudaStorage) -> Vec<f32> {
    let cpu = s.download(0, s.len()).unwrap();
    (0..cpu.len()).map(|i| cpu.get_f32(i)).collect()
}

#[test]
fn in_place_map_reads_each_element_before_writing_it() {
    let be = CudaBackend::emulated();
    let n = 1001;
    for dt in [DType::F32, DType::F16, DType::BF16] {
        let (a, av) = upload(&be, (0..n).map(|i| (i as f32).sin()).collect(), dt);
        let (b, bv) = upload(&be, (0..n).map(|i| (i as f32).cos()).collect(), dt);
        be.binary("mul", a.ptr(), b.ptr(), a.ptr(), n, dt).unwrap();
        let mut want = vec![0.0; n];
        R::mul(&av, &bv, &mut want).unwrap();
        assert_close(
            &format!("mul in place {dt:?}"),
            &download(&a),
            &want,
            2e-2,
            1e-2,
        );
    }
}

#[test]
fn embedding_kernel_writes_zeros_past_the_vocabulary() {
    let be = CudaBackend::emulated();
    let (vocab, cols) = (5, 37);
    let (table, tv) = upload(
        &be,
        (0..vocab * cols).map(|i| i as f32).collect(),
        DType::F32,
    );
    let ids = be.upload_buffer(bytemuck::cast_slice(&[3u32, 5])).unwrap();
    let out = be.alloc(2 * cols, DType::F32).unwrap();
    be.embedding(
        ids.ptr(),
        table.ptr(),
        out.ptr(),
        2,
        cols,
        vocab,
        DType::F32,
    )
    .unwrap();
    let mut want = tv[3 * cols..4 * cols].to_vec();
    want.resize(2 * cols, 0.0);
    assert_eq!(download(&out), want);
}

#[test]
fn launch_step_errors_are_typed() {
    let be = CudaBackend::emulated();
    let cfg = LaunchConfig::for_num_elems(1);
    let n = 1u64;
    // SAFETY: neither launch reaches a kernel body (unknown name; wrong argument count).
    let missing = unsafe { be.launch_kernel("no_such_kernel", cfg, &[&n]) };
    assert!(matches!(missing, Err(Error::MissingKernel { name }) if name == "no_such_kernel"));
    let wrong = unsafe { be.launch_kernel("silu_f32", cfg, &[&n]) };
    assert!(
        matches!(
            &wrong,
            Err(Error::Emulator {
                source: EmuError::InvalidLaunch { .. }
            })
        ),
        "{wrong:?}"
    );
    assert!(matches!(be.stream(), Err(Error::NeedsGpu { .. })));
    assert!(matches!(
        be.time_median_ms(0, 1, || Ok(())),
        Err(Error::NeedsGpu { .. })
    ));
    assert_eq!(be.to_string(), "emu");
}
