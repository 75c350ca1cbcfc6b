//! Writes a synthetic trace (made-up data, `"source": "synthetic"`) for demos and tests:
//! `cargo run --example synthetic_trace -- GPUS SAMPLES INTERVAL_MS OUT.jsonl`.

use std::path::PathBuf;
use std::process::ExitCode;

use neuronmap::telemetry::synthetic;
use neuronmap::telemetry::trace::{TraceHeader, TraceSample, TraceWriter};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [gpus, samples, interval, out] = args.as_slice() else {
        eprintln!("usage: synthetic_trace GPUS SAMPLES INTERVAL_MS OUT.jsonl");
        return ExitCode::from(2);
    };
    let (Ok(gpus), Ok(samples), Ok(interval)) = (gpus.parse(), samples.parse(), interval.parse())
    else {
        eprintln!("GPUS, SAMPLES and INTERVAL_MS must be whole numbers");
        return ExitCode::from(2);
    };
    let frames = synthetic::frames(gpus, samples, interval, 42);
    let Some(first) = frames.first() else {
        eprintln!("SAMPLES must be at least 1");
        return ExitCode::from(2);
    };
    let header = TraceHeader::for_frame(first, "synthetic", interval);
    let written = TraceWriter::create(&PathBuf::from(out), &header).and_then(|mut w| {
        frames
            .iter()
            .try_for_each(|f| w.write_sample(&TraceSample::from(f)))
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
