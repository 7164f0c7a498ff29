//! Without a CUDA driver or device, asking for the GPU is a typed error (never a panic: cudarc
//! would panic in its lazy loader, so the backend probes first) and the CPU keeps working. On
//! a GPU host the same test checks that the device opens.

use nano_infer::{DType, Device, Error, Tensor, functional as F};

#[test]
fn cuda_is_a_typed_error_or_a_device_and_cpu_still_works() {
    match nano_infer::cuda(0) {
        Ok(dev) => assert!(!dev.is_cpu()),
        Err(e) => assert!(
            matches!(e, Error::CudaUnavailable { .. } | Error::Cuda { .. }),
            "unexpected error: {e}"
        ),
    }
    // A device ordinal past the last GPU is an error too, on any machine.
    assert!(nano_infer::cuda(1 << 20).is_err());
    let x = Tensor::from_vec(vec![3.0f32, 4.0], [1, 2], &Device::Cpu).unwrap();
    let w = Tensor::from_f32(vec![1.0, 1.0], [2], DType::F32, &Device::Cpu).unwrap();
    let y = F::rms_norm(&x, &w, 0.0).unwrap().to_vec_f32().unwrap();
    // rms([3, 4]) = sqrt(12.5)
    assert!(
        (y[0] - 3.0 / 12.5f32.sqrt()).abs() < 1e-6 && (y[1] - 4.0 / 12.5f32.sqrt()).abs() < 1e-6
    );
}
