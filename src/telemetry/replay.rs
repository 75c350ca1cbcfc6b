//! Replays a recorded trace as a [`FrameSource`] (and a [`GpuSource`]), so tests, demos and
//! post-mortems drive every screen through the same path as live data.
//!
//! The trace is streamed line by line (one sample of look-ahead), so replaying a long trace
//! costs no more memory than a short one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::{DriverInfo, Frame, GpuSample, GpuStatic};
use super::source::{FrameSource, GpuSource, TelemetryError, Tick};
use super::trace::{TraceHeader, TraceReader};

/// A recorded trace played back at a chosen speed, optionally looping.
pub struct ReplaySource {
    path: PathBuf,
    reader: TraceReader,
    header: TraceHeader,
    next: Option<Frame>,
    speed: f64,
    looping: bool,
    pending_error: Option<String>,
}

impl ReplaySource {
    /// Opens `path` and reads its header and first sample; a trace with no samples is an error.
    pub fn open(path: &Path, speed: f64, looping: bool) -> Result<Self, TelemetryError> {
        let mut reader = TraceReader::open(path)?;
        let header = reader.header().clone();
        let first = reader
            .next_sample()?
            .ok_or_else(|| TelemetryError::EmptyTrace {
                path: path.to_path_buf(),
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            next: Some(header.frame(first)),
            reader,
            header,
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
            looping,
            pending_error: None,
        })
    }

    /// The trace's header.
    pub fn header(&self) -> &TraceHeader {
        &self.header
    }

    /// Reads the frame after the current one, starting over at the end when looping.
    fn read_ahead(&mut self) -> Result<Option<Frame>, TelemetryError> {
        if let Some(sample) = self.reader.next_sample()? {
            return Ok(Some(self.header.frame(sample)));
        }
        if !self.looping {
            return Ok(None);
        }
        self.reader = TraceReader::open(&self.path)?;
        Ok(self.reader.next_sample()?.map(|s| self.header.frame(s)))
    }
}

impl FrameSource for ReplaySource {
    fn next_tick(&mut self) -> Tick {
        if let Some(error) = self.pending_error.take() {
            return Tick::Failed(error);
        }
        let Some(current) = self.next.take() else {
            return Tick::End;
        };
        match self.read_ahead() {
            Ok(next) => {
                let gap_ms = match &next {
                    Some(n) if n.timestamp_ms > current.timestamp_ms => {
                        n.timestamp_ms - current.timestamp_ms
                    }
                    _ => self.header.interval_ms,
                };
                self.next = next;
                Tick::Frame {
                    frame: Box::new(current),
                    wait: Some(Duration::from_secs_f64(gap_ms as f64 / 1000.0 / self.speed)),
                }
            }
            Err(e) => {
                // Hand out the good frame now; the error ends the replay on the next tick.
                self.next = None;
                self.pending_error = Some(e.to_string());
                Tick::Frame {
                    frame: Box::new(current),
                    wait: None,
                }
            }
        }
    }
}

impl GpuSource for ReplaySource {
    fn driver(&self) -> DriverInfo {
        self.header.driver.clone()
    }

    fn devices(&self) -> Vec<GpuStatic> {
        self.header.devices.clone()
    }

    /// The GPU part of the next recorded frame; at the end of a trace that does not loop, the
    /// last GPUs are reported lost, since no more readings exist.
    fn sample(&mut self) -> Vec<GpuSample> {
        match self.next_tick() {
            Tick::Frame { frame, .. } => frame.gpus,
            Tick::End | Tick::Failed(_) => self
                .header
                .devices
                .iter()
                .map(|d| GpuSample::lost(d.index, "end of the replayed trace"))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::synthetic;
    use crate::telemetry::trace::{TraceSample, TraceWriter};

    fn trace(dir: &Path, frames: &[Frame]) -> PathBuf {
        let path = dir.join("r.jsonl");
        let header = TraceHeader::for_frame(&frames[0], "synthetic", 500);
        let mut w = TraceWriter::create(&path, &header).unwrap();
        for f in frames {
            w.write_sample(&TraceSample::from(f)).unwrap();
        }
        path
    }

    fn drain(source: &mut ReplaySource, max: usize) -> (Vec<Frame>, Vec<Option<Duration>>, Tick) {
        let mut frames = Vec::new();
        let mut waits = Vec::new();
        for _ in 0..max {
            match source.next_tick() {
                Tick::Frame { frame, wait } => {
                    frames.push(*frame);
                    waits.push(wait);
                }
                other => return (frames, waits, other),
            }
        }
        (frames, waits, Tick::End)
    }

    #[test]
    fn replay_gives_every_frame_with_the_recorded_spacing_scaled_by_speed() {
        let dir = tempfile::tempdir().unwrap();
        let frames = synthetic::frames(2, 4, 1000, 3);
        let path = trace(dir.path(), &frames);
        let mut source = ReplaySource::open(&path, 4.0, false).unwrap();
        let (got, waits, end) = drain(&mut source, 10);
        assert_eq!(got, frames);
        assert_eq!(waits[0], Some(Duration::from_millis(250)));
        assert_eq!(end, Tick::End);
    }

    #[test]
    fn looping_replay_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let frames = synthetic::frames(1, 3, 1000, 3);
        let path = trace(dir.path(), &frames);
        let mut source = ReplaySource::open(&path, 1.0, true).unwrap();
        let (got, _, _) = drain(&mut source, 7);
        assert_eq!(got.len(), 7);
        assert_eq!(got[3], frames[0]);
        assert_eq!(got[6], frames[0]);
    }

    #[test]
    fn a_corrupt_line_mid_trace_fails_the_replay_with_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let frames = synthetic::frames(1, 3, 1000, 3);
        let path = trace(dir.path(), &frames);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"type\":\"sample\",\"timestamp_ms\":oops}\n");
        std::fs::write(&path, text).unwrap();
        let mut source = ReplaySource::open(&path, 1.0, false).unwrap();
        let (got, _, end) = drain(&mut source, 10);
        assert_eq!(got.len(), 3);
        match end {
            Tick::Failed(msg) => assert!(msg.contains("line 5"), "{msg}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
