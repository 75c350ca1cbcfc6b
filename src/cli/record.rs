//! `neuronmap record`: write samples to a versioned JSON-lines trace (see
//! [`crate::telemetry::trace`]) until `--duration` passes, the source ends, or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use crate::config::Config;
use crate::telemetry::sampler::{Sampler, SamplerEvent};
use crate::telemetry::trace::{TraceHeader, TraceSample, TraceWriter};
use crate::telemetry::{self, Origin};

/// Arguments of `neuronmap record` (the sample interval is the global `--interval`).
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Trace file to write (created or truncated).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Stop after this many seconds (default: until Ctrl-C or the end of a replay).
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
}

/// Records until told to stop; every finished sample is on disk even if the process is killed.
pub fn run(args: &RecordArgs, global: &GlobalArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let interval = super::sample_interval(global, config)?;
    if let Some(d) = args.duration {
        anyhow::ensure!(
            d.is_finite() && d > 0.0,
            "--duration must be a positive number of seconds, got {d}"
        );
    }
    let (source, origin) = telemetry::open_source(global)?;
    let recorded_from = match &origin {
        Origin::Live => "nvml".to_string(),
        // A re-recorded replay keeps the label of its origin, so synthetic data stays marked.
        Origin::Replay { recorded_from, .. } => recorded_from.clone(),
    };
    let (sampler, mut rx) = Sampler::spawn(source, interval);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = args.out.clone();
    let duration = args.duration.map(Duration::from_secs_f64);
    let count = runtime.block_on(async move {
        let deadline = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let mut stop = super::StopSignals::new()?;
        let mut writer: Option<TraceWriter> = None;
        let mut count = 0usize;
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(SamplerEvent::Frame(frame)) => {
                        let w = match writer.as_mut() {
                            Some(w) => w,
                            None => {
                                let header = TraceHeader::for_frame(
                                    &frame,
                                    &recorded_from,
                                    interval.as_millis() as u64,
                                );
                                writer.insert(TraceWriter::create(&out, &header)?)
                            }
                        };
                        w.write_sample(&TraceSample::from(frame.as_ref()))?;
                        count += 1;
                    }
                    Some(SamplerEvent::Failed(why)) => anyhow::bail!("recording stopped: {why}"),
                    Some(SamplerEvent::Ended) | None => break,
                },
                _ = &mut deadline => break,
                _ = stop.recv() => break,
            }
        }
        anyhow::Ok(count)
    })?;
    drop(sampler);
    eprintln!("recorded {count} samples to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
