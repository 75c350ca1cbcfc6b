//! What a forward pass hands back: the selected hooks' batch tensors, and the batch itself.

use candle_core::Tensor;

use super::error::EngineError;
use super::hooks::HookSelection;

/// A padded batch of prompts (right padding; padding never reaches the outputs).
pub struct Batch {
    /// Token ids `[B, S]` (u32).
    pub ids: Tensor,
    /// The same ids on the host, row-major `[B * S]` (padding is 0).
    pub host_ids: Vec<u32>,
    /// Real length of each prompt.
    pub lens: Vec<usize>,
    /// Padded length `S`.
    pub seq: usize,
}

impl Batch {
    /// Whether any prompt is shorter than the padded length.
    pub fn padded(&self) -> bool {
        self.lens.iter().any(|&l| l != self.seq)
    }
}

/// Collects the selected hooks during one forward pass.
pub struct Capture<'a> {
    selection: &'a HookSelection,
    /// Per-token hooks: `[B, S, ...]` tensors (any strides), in the order they were produced.
    pub per_token: Vec<(String, Tensor)>,
    /// Hooks with two position axes: `[B, H, S, S]` tensors.
    pub per_prompt: Vec<(String, Tensor)>,
}

impl<'a> Capture<'a> {
    /// An empty capture for a selection.
    pub fn new(selection: &'a HookSelection) -> Self {
        Self {
            selection,
            per_token: Vec::new(),
            per_prompt: Vec::new(),
        }
    }

    /// The selection being captured.
    pub fn selection(&self) -> &HookSelection {
        self.selection
    }

    /// Whether block `i`'s hook `suffix` is selected.
    pub fn wants_block(&self, i: usize, suffix: &str) -> bool {
        self.selection.wants(&block_name(i, suffix))
    }

    /// Keeps a per-token tensor `[B, S, ...]` if the hook is selected; `make` runs only then.
    pub fn token(
        &mut self,
        name: &str,
        make: impl FnOnce() -> candle_core::Result<Tensor>,
    ) -> Result<(), EngineError> {
        if self.selection.wants(name) {
            self.per_token.push((name.to_string(), make()?));
        }
        Ok(())
    }

    /// Per-token hook of block `i`.
    pub fn block(
        &mut self,
        i: usize,
        suffix: &str,
        make: impl FnOnce() -> candle_core::Result<Tensor>,
    ) -> Result<(), EngineError> {
        let name = block_name(i, suffix);
        if self.selection.wants(&name) {
            self.per_token.push((name, make()?));
        }
        Ok(())
    }

    /// `[B, H, S, S]` hook of block `i`.
    pub fn block_square(&mut self, i: usize, suffix: &str, t: &Tensor) {
        let name = block_name(i, suffix);
        if self.selection.wants(&name) {
            self.per_prompt.push((name, t.clone()));
        }
    }
}

/// `blocks.{i}.{suffix}`.
pub fn block_name(i: usize, suffix: &str) -> String {
    format!("blocks.{i}.{suffix}")
}
