//! Backends: where ops run. `functional` dispatches on the device of its inputs.

pub mod cuda;
