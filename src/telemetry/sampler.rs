//! The sampler thread: asks a [`FrameSource`] for a frame every interval (or at the pace a
//! replay asks for) and sends it to whoever draws. The UI never waits on NVML: it only reads
//! what the sampler has sent.

use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::model::Frame;
use super::source::{FrameSource, Tick};

/// Frames buffered between the sampler and the UI; the sampler waits when the UI falls this far
/// behind, so memory stays bounded.
const CHANNEL_CAPACITY: usize = 64;

/// What the sampler sends.
#[derive(Debug, Clone, PartialEq)]
pub enum SamplerEvent {
    /// A new frame.
    Frame(Box<Frame>),
    /// The source ended (a replay without `--loop`); the last frame stays on screen.
    Ended,
    /// The source broke (a corrupt trace line); the text says why.
    Failed(String),
}

/// A running sampler thread; dropping it stops the thread.
pub struct Sampler {
    stop: Option<std_mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts the thread. `interval` applies to sources that do not set their own pace.
    pub fn spawn(
        mut source: Box<dyn FrameSource>,
        interval: Duration,
    ) -> (Self, mpsc::Receiver<SamplerEvent>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (stop_tx, stop_rx) = std_mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("neuronmap-sampler".into())
            .spawn(move || loop {
                let started = Instant::now();
                let (event, wait) = match source.next_tick() {
                    Tick::Frame { frame, wait } => {
                        (SamplerEvent::Frame(frame), wait.unwrap_or(interval))
                    }
                    Tick::End => (SamplerEvent::Ended, Duration::MAX),
                    Tick::Failed(why) => (SamplerEvent::Failed(why), Duration::MAX),
                };
                let last = wait == Duration::MAX;
                if tx.blocking_send(event).is_err() || last {
                    return;
                }
                // Keep a steady cadence: the time spent sampling counts towards the wait.
                let remaining = wait.saturating_sub(started.elapsed());
                match stop_rx.recv_timeout(remaining) {
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            })
            .ok();
        (
            Self {
                stop: Some(stop_tx),
                thread,
            },
            rx,
        )
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        // Closing the stop channel wakes the thread from its wait.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            // The thread may be blocked sending to a full channel whose receiver is still alive;
            // don't join then, it exits on its own once the receiver goes.
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::synthetic;

    struct Scripted(std::vec::IntoIter<Frame>);

    impl FrameSource for Scripted {
        fn next_tick(&mut self) -> Tick {
            match self.0.next() {
                Some(frame) => Tick::Frame {
                    frame: Box::new(frame),
                    wait: None,
                },
                None => Tick::End,
            }
        }
    }

    #[test]
    fn sampler_delivers_every_frame_then_the_end() {
        let frames = synthetic::frames(2, 5, 1000, 9);
        let source = Scripted(frames.clone().into_iter());
        let (_sampler, mut rx) = Sampler::spawn(Box::new(source), Duration::from_millis(1));
        let mut got = Vec::new();
        loop {
            match rx.blocking_recv() {
                Some(SamplerEvent::Frame(f)) => got.push(*f),
                Some(SamplerEvent::Ended) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn dropping_the_sampler_stops_a_slow_source() {
        let frames = synthetic::frames(1, 100, 1000, 9);
        let source = Scripted(frames.into_iter());
        let (sampler, mut rx) = Sampler::spawn(Box::new(source), Duration::from_secs(3600));
        assert!(matches!(rx.blocking_recv(), Some(SamplerEvent::Frame(_))));
        drop(sampler);
        // The thread wakes from its hour-long wait and closes the channel.
        assert_eq!(rx.blocking_recv(), None);
    }
}
