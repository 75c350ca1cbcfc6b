//! The persistent job queue: a SQLite store ([`store`]), placement of jobs on GPUs and the CPU
//! ([`placement`], [`scheduler`]), the scheduler daemon ([`daemon`]) and the worker process
//! that runs one job ([`worker`]), and what clients do ([`client`]: cancel, retry, detail,
//! and the feed the dashboard reads). The engine and the estimator are reached only through
//! [`engine_link`].

pub mod client;
pub mod daemon;
pub mod engine_link;
pub mod job;
pub mod placement;
pub mod process;
pub mod scheduler;
pub mod store;
pub mod worker;
