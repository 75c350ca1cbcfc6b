//! The longest prompt of an input file, in tokens: the padded length of the batch that holds it
//! is what the peak depends on; and the other facts about the prompts the engine's buffers
//! depend on (how many, the longest in bytes, the mean length the engine sizes shards with).

use std::path::Path;
use std::time::Instant;

use super::workload::InputShape;

/// Prompts the engine samples to size its shards (src/engine/run.rs `shard_prompts`).
const SHARD_SAMPLE: usize = 64;

/// Prompts tokenised to find the longest (the longest by bytes; token counts follow bytes
/// closely enough that the true longest is among them).
const CANDIDATES: usize = 32;

/// Reads prompts: `.jsonl` objects with a `text` field, else one prompt per line.
pub fn read_prompts(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|line| {
                if jsonl {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()?
                        .get("text")?
                        .as_str()
                        .map(str::to_string)
                } else {
                    Some(line.to_string())
                }
            })
            .collect(),
    )
}

/// Tokens of the longest prompt of `input`: exact with `model_dir/tokenizer.json` (special
/// tokens added, padding and truncation off), else bytes / 3 + 2 (a safe over-estimate for
/// BPE vocabularies). `None` when the input cannot be read or is empty.
pub fn longest_prompt_tokens(input: &Path, model_dir: Option<&Path>) -> Option<u64> {
    let mut prompts = read_prompts(input)?;
    prompts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    prompts.truncate(CANDIDATES);
    let longest_bytes = prompts.first()?.len() as u64;
    let tokenizer = model_dir
        .map(|d| d.join("tokenizer.json"))
        .filter(|p| p.is_file())
        .and_then(|p| tokenizers::Tokenizer::from_file(p).ok());
    if let Some(mut tok) = tokenizer {
        tok.with_padding(None);
        if tok.with_truncation(None).is_ok() {
            let counts: Option<Vec<u64>> = prompts
                .iter()
                .map(|p| {
                    tok.encode(p.as_str(), true)
                        .ok()
                        .map(|e| e.get_ids().len() as u64)
                })
                .collect();
            if let Some(max) = counts.and_then(|c| c.into_iter().max()) {
                return Some(max.max(1));
            }
        }
    }
    Some(longest_bytes / 3 + 2)
}

/// What the engine's buffers depend on in `input`: the prompt count, the longest prompt in
/// bytes, and the mean tokens of the first prompts (tokenised with `model_dir/tokenizer.json`,
/// cut at `max_len` as the engine does; bytes / 3 + 2 without a tokenizer), with the time the
/// tokenizer took per prompt. `None` when the input cannot be read or is empty.
pub fn input_shape(
    input: &Path,
    model_dir: Option<&Path>,
    max_len: Option<u64>,
) -> Option<InputShape> {
    let prompts = read_prompts(input)?;
    let longest_prompt_bytes = prompts.iter().map(|p| p.len() as u64).max()?;
    let sample = &prompts[..prompts.len().min(SHARD_SAMPLE)];
    let tokenizer = model_dir
        .map(|d| d.join("tokenizer.json"))
        .filter(|p| p.is_file())
        .and_then(|p| tokenizers::Tokenizer::from_file(p).ok());
    let cap = max_len.unwrap_or(u64::MAX).max(1);
    let mut total = 0u64;
    let mut seconds = 0.0;
    if let Some(tok) = &tokenizer {
        // The first call builds lazily compiled pre-tokeniser state; not part of the rate.
        let _ = tok.encode("warm up", true);
    }
    for p in sample {
        let started = Instant::now();
        let counted = tokenizer
            .as_ref()
            .and_then(|t| t.encode(p.as_str(), true).ok())
            .map(|e| e.get_ids().len() as u64);
        if counted.is_some() {
            seconds += started.elapsed().as_secs_f64();
        }
        total += counted.unwrap_or(p.len() as u64 / 3 + 2).clamp(1, cap);
    }
    let n = sample.len().max(1) as f64;
    Some(InputShape {
        prompts: Some(prompts.len() as u64),
        longest_prompt_bytes,
        mean_tokens: total as f64 / n,
        tokenize_seconds_per_prompt: seconds / n,
    })
}
