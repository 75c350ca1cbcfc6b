//! The trace format written by `neuronmap record` and read by `--replay`: versioned JSON lines.
//!
//! Line 1 is a [`TraceHeader`] (`"type": "header"`) with the schema version and the static facts
//! (driver, GPUs). Every further line is a [`TraceSample`] (`"type": "sample"`) with one tick of
//! GPU and host readings. Each line is written whole and flushed, so a recording that is killed
//! keeps every sample it finished.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::{DriverInfo, Frame, GpuSample, GpuStatic, HostSample};
use super::source::TelemetryError;

/// Version of the trace format this build writes and reads.
pub const TRACE_SCHEMA_VERSION: u32 = 1;

/// First line of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// Trace format version ([`TRACE_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Where the samples came from: `nvml`, `replay` (re-recorded) or `synthetic` (generated
    /// test data, not a real machine).
    pub source: String,
    /// Host the trace was recorded on.
    pub hostname: String,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// Nominal sample interval.
    pub interval_ms: u64,
    /// Driver status.
    pub driver: DriverInfo,
    /// Static facts of every GPU.
    pub devices: Vec<GpuStatic>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSample {
    /// Wall-clock time of the sample, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// One sample per GPU.
    pub gpus: Vec<GpuSample>,
    /// Host reading.
    pub host: HostSample,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Header(TraceHeader),
    Sample(TraceSample),
}

impl TraceHeader {
    /// The header for a recording of frames that look like `frame`.
    pub fn for_frame(frame: &Frame, source: &str, interval_ms: u64) -> Self {
        Self {
            schema_version: TRACE_SCHEMA_VERSION,
            source: source.to_string(),
            hostname: frame.host.hostname.clone(),
            started_ms: frame.timestamp_ms,
            interval_ms,
            driver: frame.driver.clone(),
            devices: frame.devices.clone(),
        }
    }

    /// Rebuilds the full frame of a sample line.
    pub fn frame(&self, sample: TraceSample) -> Frame {
        Frame {
            timestamp_ms: sample.timestamp_ms,
            driver: self.driver.clone(),
            devices: self.devices.clone(),
            gpus: sample.gpus,
            host: sample.host,
        }
    }
}

impl From<&Frame> for TraceSample {
    fn from(frame: &Frame) -> Self {
        Self {
            timestamp_ms: frame.timestamp_ms,
            gpus: frame.gpus.clone(),
            host: frame.host.clone(),
        }
    }
}

/// Writes a trace line by line.
pub struct TraceWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl TraceWriter {
    /// Creates (or truncates) `path` and writes the header line.
    pub fn create(path: &Path, header: &TraceHeader) -> Result<Self, TelemetryError> {
        let file = File::create(path).map_err(|source| TelemetryError::WriteTrace {
            path: path.to_path_buf(),
            source,
        })?;
        let mut writer = Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        };
        writer.write_line(&Line::Header(header.clone()))?;
        Ok(writer)
    }

    /// Appends one sample and flushes it.
    pub fn write_sample(&mut self, sample: &TraceSample) -> Result<(), TelemetryError> {
        self.write_line(&Line::Sample(sample.clone()))
    }

    fn write_line(&mut self, line: &Line) -> Result<(), TelemetryError> {
        let wrap = |source| TelemetryError::WriteTrace {
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut self.out, line).map_err(|e| wrap(e.into()))?;
        self.out.write_all(b"\n").map_err(wrap)?;
        self.out.flush().map_err(wrap)
    }
}

/// Reads a trace line by line, with line numbers in every error.
pub struct TraceReader {
    path: PathBuf,
    lines: std::io::Lines<BufReader<File>>,
    line_number: usize,
    header: TraceHeader,
}

impl TraceReader {
    /// Opens a trace and reads its header.
    pub fn open(path: &Path) -> Result<Self, TelemetryError> {
        let file = File::open(path).map_err(|source| TelemetryError::OpenTrace {
            path: path.to_path_buf(),
            source,
        })?;
        let mut lines = BufReader::new(file).lines();
        let bad = |line: usize, message: String| TelemetryError::BadTrace {
            path: path.to_path_buf(),
            line,
            message,
        };
        let first = match lines.next() {
            Some(Ok(text)) => text,
            Some(Err(e)) => return Err(bad(1, e.to_string())),
            None => return Err(bad(1, "the file is empty, expected a header line".into())),
        };
        // Check the version before the shape, so an old or new format says so.
        let value: serde_json::Value =
            serde_json::from_str(&first).map_err(|e| bad(1, format!("not JSON: {e}")))?;
        if let Some(found) = value.get("schema_version").and_then(|v| v.as_u64()) {
            if found != u64::from(TRACE_SCHEMA_VERSION) {
                return Err(TelemetryError::TraceVersion {
                    path: path.to_path_buf(),
                    found: u32::try_from(found).unwrap_or(u32::MAX),
                    expected: TRACE_SCHEMA_VERSION,
                });
            }
        }
        let header = match serde_json::from_value::<Line>(value) {
            Ok(Line::Header(h)) => h,
            Ok(Line::Sample(_)) => {
                return Err(bad(1, "expected a header line, found a sample".into()))
            }
            Err(e) => return Err(bad(1, format!("not a trace header: {e}"))),
        };
        Ok(Self {
            path: path.to_path_buf(),
            lines,
            line_number: 1,
            header,
        })
    }

    /// The header.
    pub fn header(&self) -> &TraceHeader {
        &self.header
    }

    /// The next sample, `Ok(None)` at the end of the file. Blank lines are skipped.
    pub fn next_sample(&mut self) -> Result<Option<TraceSample>, TelemetryError> {
        loop {
            let Some(line) = self.lines.next() else {
                return Ok(None);
            };
            self.line_number += 1;
            let bad = |message: String| TelemetryError::BadTrace {
                path: self.path.clone(),
                line: self.line_number,
                message,
            };
            let text = line.map_err(|e| bad(e.to_string()))?;
            if text.trim().is_empty() {
                continue;
            }
            return match serde_json::from_str::<Line>(&text) {
                Ok(Line::Sample(s)) => {
                    if s.gpus.len() != self.header.devices.len() {
                        return Err(bad(format!(
                            "{} GPU samples, but the header lists {} GPUs",
                            s.gpus.len(),
                            self.header.devices.len()
                        )));
                    }
                    Ok(Some(s))
                }
                Ok(Line::Header(_)) => Err(bad("a second header line".into())),
                Err(e) => Err(bad(format!("not a valid sample: {e}"))),
            };
        }
    }

    /// Reads every remaining sample as frames.
    pub fn read_all(mut self) -> Result<(TraceHeader, Vec<Frame>), TelemetryError> {
        let mut frames = Vec::new();
        while let Some(sample) = self.next_sample()? {
            frames.push(self.header.frame(sample));
        }
        Ok((self.header, frames))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::synthetic;

    fn write_trace(dir: &Path, frames: &[Frame]) -> PathBuf {
        let path = dir.join("t.jsonl");
        let header = TraceHeader::for_frame(&frames[0], "synthetic", 1000);
        let mut w = TraceWriter::create(&path, &header).unwrap();
        for f in frames {
            w.write_sample(&TraceSample::from(f)).unwrap();
        }
        path
    }

    #[test]
    fn frames_survive_a_write_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let frames = synthetic::frames(3, 5, 1000, 7);
        let path = write_trace(dir.path(), &frames);
        let (header, back) = TraceReader::open(&path).unwrap().read_all().unwrap();
        assert_eq!(header.devices.len(), 3);
        assert_eq!(back, frames);
    }

    #[test]
    fn truncated_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let frames = synthetic::frames(2, 4, 1000, 1);
        let path = write_trace(dir.path(), &frames);
        let text = std::fs::read_to_string(&path).unwrap();
        // Cut the file in the middle of the 4th line (the 3rd sample).
        let cut = text.match_indices('\n').nth(2).unwrap().0 + 40;
        std::fs::write(&path, &text[..cut]).unwrap();
        let err = TraceReader::open(&path).unwrap().read_all().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn corrupt_header_and_wrong_version_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "{not json\n").unwrap();
        let err = TraceReader::open(&path).err().unwrap().to_string();
        assert!(err.contains("line 1"), "{err}");

        let frames = synthetic::frames(1, 1, 1000, 1);
        let mut header = TraceHeader::for_frame(&frames[0], "synthetic", 1000);
        header.schema_version = 99;
        std::fs::write(&path, serde_json::to_string(&Line::Header(header)).unwrap()).unwrap();
        let err = TraceReader::open(&path).err().unwrap();
        assert!(matches!(
            err,
            TelemetryError::TraceVersion { found: 99, .. }
        ));
    }
}
