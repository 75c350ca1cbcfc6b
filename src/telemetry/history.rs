//! Bounded per-GPU histories that the sampler feeds and the panels draw as sparklines.

use std::collections::VecDeque;

use super::model::Frame;

/// A fixed-capacity ring of values; the oldest value is dropped when full.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    values: VecDeque<T>,
    capacity: usize,
}

impl<T: Copy> Ring<T> {
    /// An empty ring that keeps at most `capacity` values (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            values: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    /// Appends a value, dropping the oldest one when the ring is full.
    pub fn push(&mut self, value: T) {
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when nothing has been pushed yet.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Maximum number of values kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The newest `n` values, oldest first.
    pub fn last_n(&self, n: usize) -> impl Iterator<Item = T> + '_ {
        let skip = self.values.len().saturating_sub(n);
        self.values.iter().skip(skip).copied()
    }

    /// The newest value.
    pub fn latest(&self) -> Option<T> {
        self.values.back().copied()
    }
}

/// The history of one GPU: utilisation and memory use, one entry per sample
/// (`None` entries stand for ticks where the value was not available).
#[derive(Debug, Clone)]
pub struct GpuHistory {
    /// GPU utilisation in percent.
    pub utilization_percent: Ring<Option<u32>>,
    /// Memory in use, in percent of the total.
    pub memory_percent: Ring<Option<u32>>,
    /// Power draw in watts.
    pub power_watts: Ring<Option<f64>>,
}

impl GpuHistory {
    fn new(capacity: usize) -> Self {
        Self {
            utilization_percent: Ring::new(capacity),
            memory_percent: Ring::new(capacity),
            power_watts: Ring::new(capacity),
        }
    }
}

/// Histories for every GPU and for the host CPU, bounded to a fixed number of samples.
#[derive(Debug, Clone)]
pub struct History {
    capacity: usize,
    gpus: Vec<GpuHistory>,
    /// Host CPU use in percent.
    pub host_cpu_percent: Ring<f32>,
    /// Host memory use in percent.
    pub host_memory_percent: Ring<f32>,
}

impl History {
    /// Histories long enough to cover `span` at one sample per `interval`.
    pub fn for_span(span: std::time::Duration, interval: std::time::Duration) -> Self {
        let per = interval.as_millis().max(1);
        let capacity = (span.as_millis() / per).clamp(1, 1_000_000) as usize;
        Self::with_capacity(capacity)
    }

    /// Histories that keep `capacity` samples.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            gpus: Vec::new(),
            host_cpu_percent: Ring::new(capacity),
            host_memory_percent: Ring::new(capacity),
        }
    }

    /// Number of samples each history keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The history of the GPU at `position` in the frame's device list.
    pub fn gpu(&self, position: usize) -> Option<&GpuHistory> {
        self.gpus.get(position)
    }

    /// Records one frame.
    pub fn record(&mut self, frame: &Frame) {
        if self.gpus.len() != frame.gpus.len() {
            self.gpus
                .resize_with(frame.gpus.len(), || GpuHistory::new(self.capacity));
        }
        for ((history, sample), device) in self.gpus.iter_mut().zip(&frame.gpus).zip(&frame.devices)
        {
            history
                .utilization_percent
                .push(sample.utilization_gpu_percent);
            let memory = sample
                .memory_used_bytes
                .filter(|_| device.memory_total_bytes > 0)
                .map(|used| {
                    ((used as f64 / device.memory_total_bytes as f64) * 100.0).round() as u32
                });
            history.memory_percent.push(memory);
            history.power_watts.push(sample.power_draw_watts);
        }
        self.host_cpu_percent.push(frame.host.cpu_percent);
        let host = &frame.host;
        let mem = if host.memory_total_bytes > 0 {
            host.memory_used_bytes as f32 / host.memory_total_bytes as f32 * 100.0
        } else {
            0.0
        };
        self.host_memory_percent.push(mem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_drops_oldest_when_full() {
        let mut ring = Ring::new(3);
        for v in 1..=5 {
            ring.push(v);
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.last_n(10).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(ring.last_n(2).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(ring.latest(), Some(5));
    }

    #[test]
    fn history_capacity_covers_span_at_interval() {
        let h = History::for_span(
            std::time::Duration::from_secs(600),
            std::time::Duration::from_millis(250),
        );
        assert_eq!(h.capacity(), 2400);
    }
}
