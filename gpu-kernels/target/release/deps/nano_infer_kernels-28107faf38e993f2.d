/work/main/gpu-kernels/target/release/deps/nano_infer_kernels-28107faf38e993f2.d: src/lib.rs src/params.rs src/activation.rs src/attention_decode.rs src/attention_flash.rs src/elem.rs src/elementwise.rs src/emu/mod.rs src/emu/block.rs src/emu/error.rs src/emu/fragments.rs src/emu/pool.rs src/emu/shared.rs src/emu/thread.rs src/export.rs src/gemv.rs src/launch_shape.rs src/norm.rs src/primitives/mod.rs src/primitives/host.rs src/primitives/host_tc.rs src/primitives/softfloat.rs src/reduce.rs src/rope.rs src/softmax.rs src/unroll.rs

/work/main/gpu-kernels/target/release/deps/libnano_infer_kernels-28107faf38e993f2.rlib: src/lib.rs src/params.rs src/activation.rs src/attention_decode.rs src/attention_flash.rs src/elem.rs src/elementwise.rs src/emu/mod.rs src/emu/block.rs src/emu/error.rs src/emu/fragments.rs src/emu/pool.rs src/emu/shared.rs src/emu/thread.rs src/export.rs src/gemv.rs src/launch_shape.rs src/norm.rs src/primitives/mod.rs src/primitives/host.rs src/primitives/host_tc.rs src/primitives/softfloat.rs src/reduce.rs src/rope.rs src/softmax.rs src/unroll.rs

/work/main/gpu-kernels/target/release/deps/libnano_infer_kernels-28107faf38e993f2.rmeta: src/lib.rs src/params.rs src/activation.rs src/attention_decode.rs src/attention_flash.rs src/elem.rs src/elementwise.rs src/emu/mod.rs src/emu/block.rs src/emu/error.rs src/emu/fragments.rs src/emu/pool.rs src/emu/shared.rs src/emu/thread.rs src/export.rs src/gemv.rs src/launch_shape.rs src/norm.rs src/primitives/mod.rs src/primitives/host.rs src/primitives/host_tc.rs src/primitives/softfloat.rs src/reduce.rs src/rope.rs src/softmax.rs src/unroll.rs

src/lib.rs:
src/params.rs:
src/activation.rs:
src/attention_decode.rs:
src/attention_flash.rs:
src/elem.rs:
src/elementwise.rs:
src/emu/mod.rs:
src/emu/block.rs:
src/emu/error.rs:
src/emu/fragments.rs:
src/emu/pool.rs:
src/emu/shared.rs:
src/emu/thread.rs:
src/export.rs:
src/gemv.rs:
src/launch_shape.rs:
src/norm.rs:
src/primitives/mod.rs:
src/primitives/host.rs:
src/primitives/host_tc.rs:
src/primitives/softfloat.rs:
src/reduce.rs:
src/rope.rs:
src/softmax.rs:
src/unroll.rs:
