//! What the estimate needs from an input file, read the way the engine reads it (its
//! [`PromptFile`] reader and [`PromptTokenizer`]): the longest prompt in tokens (the padded
//! length of the batch that holds it is what the peak depends on), and the facts the engine's
//! buffers depend on (how many prompts, the longest in bytes, the mean length the engine sizes
//! shards with, and the tokenizer's time per prompt).

use std::path::Path;
use std::time::Instant;

use super::workload::InputShape;
use crate::engine::input::PromptFile;
use crate::engine::tokenize::PromptTokenizer;

/// Prompts the engine samples to size its shards (src/engine/run.rs `shard_prompts`).
const SHARD_SAMPLE: usize = 64;

/// Prompts tokenised to find the longest (the longest by bytes; token counts follow bytes
/// closely enough that the true longest is among them).
const CANDIDATES: usize = 32;

/// The input file, read once, and the model's tokenizer, loaded once.
pub struct InputFacts {
    /// Tokens of the longest prompt, at most `max_len`: exact with the model's tokenizer,
    /// else bytes / 3 + 2 (a safe over-estimate for BPE vocabularies).
    pub longest_tokens: u64,
    /// The rest of what the estimate needs.
    pub shape: InputShape,
}

/// Reads `input` with the engine's reader and tokenises with `model_dir`'s tokenizer as the
/// engine would (padding off, cut at `max_len`, BOS/EOS as the checkpoint says); without a
/// tokenizer, counts bytes / 3 + 2. `None` when the input cannot be read or is empty.
pub fn input_facts(
    input: &Path,
    model_dir: Option<&Path>,
    max_len: Option<u64>,
) -> Option<InputFacts> {
    let file = PromptFile::scan(input).ok()?;
    let prompts: Vec<String> = file
        .prompts(0)
        .ok()?
        .map_while(|p| p.ok().map(|(_, text)| text))
        .collect();
    let cap = max_len.unwrap_or(u64::from(u32::MAX)).max(1);
    let tokenizer = model_dir
        .and_then(|d| PromptTokenizer::load(d, usize::try_from(cap).unwrap_or(usize::MAX)).ok());
    let count = |text: &str| -> Option<u64> {
        let ids = tokenizer.as_ref()?.encode(text, 0).ok()?;
        Some(ids.len() as u64)
    };
    let guess = |text: &str| (text.len() as u64 / 3 + 2).clamp(1, cap);

    let mut by_bytes: Vec<&String> = prompts.iter().collect();
    by_bytes.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let longest_prompt_bytes = by_bytes.first()?.len() as u64;
    let longest_tokens = by_bytes
        .iter()
        .take(CANDIDATES)
        .map(|p| count(p))
        .collect::<Option<Vec<u64>>>()
        .and_then(|counts| counts.into_iter().max())
        .map_or_else(|| guess(by_bytes[0]), |n| n.max(1));

    let sample = &prompts[..prompts.len().min(SHARD_SAMPLE)];
    // The first call builds lazily compiled pre-tokeniser state; not part of the rate.
    let _ = count("warm up");
    let mut total = 0u64;
    let mut seconds = 0.0;
    for p in sample {
        let started = Instant::now();
        let counted = count(p);
        if counted.is_some() {
            seconds += started.elapsed().as_secs_f64();
        }
        total += counted.unwrap_or_else(|| guess(p)).clamp(1, cap);
    }
    let n = sample.len().max(1) as f64;
    Some(InputFacts {
        longest_tokens,
        shape: InputShape {
            prompts: Some(prompts.len() as u64),
            longest_prompt_bytes,
            mean_tokens: total as f64 / n,
            tokenize_seconds_per_prompt: seconds / n,
        },
    })
}
