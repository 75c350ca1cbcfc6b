//! GPU and host telemetry: the data model, the sources (NVML, replayed traces, sysinfo), the
//! sampler thread and the bounded histories the panels draw from.

pub mod history;
pub mod model;
