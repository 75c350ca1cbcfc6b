//! One extraction run: checks everything before touching the output folder, then batches
//! prompts through the model, streams the selected hooks into shards (or statistics), writes the
//! manifest after every whole shard, and stops after a shard when cancelled.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use super::capture::{Batch, Capture};
use super::error::EngineError;
use super::families::{self, Architecture};
use super::hooks::{HookLayout, HookSelection};
use super::input::PromptFile;
use super::output::{
    put_f32, remove_temporaries, shard_name, write_atomic, DatasetInfo, HookEntry, Manifest,
    ModelInfo, ShardBuffer, SCHEMA_VERSION,
};
use super::request::{Analysis, ExtractRequest, RunOutcome, RunProgress};
use super::stats::{Accumulator, StatsFile};
use super::tokenize::PromptTokenizer;

/// Tuning knobs that are not part of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// Target size of one shard; shards hold a whole number of batches.
    pub shard_target_bytes: u64,
    /// Prompts between two checkpoints of a statistics run (rounded up to whole batches).
    pub stats_chunk_prompts: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            shard_target_bytes: 64 << 20,
            stats_chunk_prompts: 256,
        }
    }
}

/// Hooks `--analysis attention` selects when no glob is given.
pub const DEFAULT_ATTENTION_HOOKS: &str = "blocks.*.attn.hook_pattern";

/// Runs an extraction with explicit options (see [`super::run_extract`]).
pub fn run_extract_with(
    req: &ExtractRequest,
    opts: &EngineOptions,
    on_progress: &mut dyn FnMut(&RunProgress),
    cancel: &AtomicBool,
) -> Result<RunOutcome, EngineError> {
    let run = Prepared::new(req, opts)?;
    run.execute(on_progress, cancel)
}

/// Everything checked and loaded; the output folder not yet touched.
struct Prepared<'r> {
    req: &'r ExtractRequest,
    model: Box<dyn Architecture>,
    tokenizer: PromptTokenizer,
    selection: HookSelection,
    input: PromptFile,
    manifest: Manifest,
    accumulators: BTreeMap<String, Accumulator>,
    stats_tokens: u64,
    device: Device,
}

impl<'r> Prepared<'r> {
    fn new(req: &'r ExtractRequest, opts: &EngineOptions) -> Result<Self, EngineError> {
        if req.batch == 0 {
            return Err(EngineError::BadRequest("--batch must be at least 1".into()));
        }
        let device = parse_device(&req.device)?;
        let dtype = parse_dtype(req.dtype.as_deref(), &device)?;
        let dir = super::resolve_model_dir(&req.model)?;
        let loaded = families::load(&dir, dtype, &device)?;
        let model = loaded.model;
        let model_max = model.max_positions();
        let max_len = req.max_len.unwrap_or(model_max);
        if max_len == 0 || max_len > model_max {
            return Err(EngineError::BadRequest(format!(
                "--max-len {max_len} is outside 1..={model_max}, this model's maximum"
            )));
        }
        let tokenizer = PromptTokenizer::load(&dir, max_len)?;
        let available = model.hooks();
        let globs = if req.analysis == Analysis::Attention && req.hooks.is_empty() {
            vec![DEFAULT_ATTENTION_HOOKS.to_string()]
        } else {
            req.hooks.clone()
        };
        let selection = HookSelection::select(&available, &globs, model.n_blocks())?;
        if req.analysis == Analysis::Attention {
            if let Some(h) = selection
                .hooks
                .iter()
                .find(|h| h.layout != HookLayout::PerPrompt)
            {
                return Err(EngineError::BadRequest(format!(
                    "--analysis attention takes attention hooks (attn.hook_pattern, attn.hook_attn_scores); {} is per-token: use --analysis activations for it",
                    h.name
                )));
            }
        }
        let input = PromptFile::scan(&req.input)?;
        let prompts_per_shard = match req.analysis {
            Analysis::Stats => round_up(opts.stats_chunk_prompts.max(1), req.batch),
            _ => shard_prompts(&selection, &tokenizer, &input, req.batch, opts)?,
        };
        let mut manifest = Manifest {
            schema_version: SCHEMA_VERSION,
            complete: false,
            analysis: req.analysis,
            model: ModelInfo {
                id: req.model.clone(),
                revision: snapshot_revision(&dir),
                path: dir,
                weights_hash: loaded.weights_hash,
                family: model.family().to_string(),
                model_type: loaded.model_type,
                n_blocks: model.n_blocks(),
            },
            dtype: dtype_name(dtype).to_string(),
            stored_dtype: "f32".into(),
            device: req.device.clone(),
            hook_globs: globs,
            hooks: selection
                .hooks
                .iter()
                .map(|h| HookEntry {
                    name: h.name.clone(),
                    shape: h.shape.clone(),
                    layout: h.layout,
                })
                .collect(),
            dataset: DatasetInfo {
                path: req.input.clone(),
                sha256: input.sha256.clone(),
                format: input.format,
            },
            prompt_count: input.count,
            prompts_done: 0,
            tokenizer: tokenizer.settings.clone(),
            batch: req.batch,
            prompts_per_shard,
            shards: Vec::new(),
            created_by: format!("neuronmap {}", env!("CARGO_PKG_VERSION")),
        };
        let mut accumulators = BTreeMap::new();
        let mut stats_tokens = 0;
        if req.out.is_file() {
            return Err(EngineError::BadRequest(format!(
                "--out {} is a file; give a folder",
                req.out.display()
            )));
        }
        if let Some(old) = Manifest::read(&req.out)? {
            if !req.resume {
                return Err(EngineError::OutputExists {
                    dir: req.out.clone(),
                });
            }
            check_resumable(&old, &manifest, &req.out)?;
            manifest.prompts_per_shard = old.prompts_per_shard;
            manifest.shards = old.shards;
            manifest.prompts_done = old.prompts_done;
            manifest.complete = old.complete;
            if req.analysis == Analysis::Stats && manifest.prompts_done > 0 {
                let stats = read_stats(&req.out)?;
                manifest.prompts_done = stats.prompts_done;
                stats_tokens = stats.tokens;
                accumulators = stats.accumulators;
            }
        }
        Ok(Self {
            req,
            model,
            tokenizer,
            selection,
            input,
            manifest,
            accumulators,
            stats_tokens,
            device,
        })
    }

    fn execute(
        mut self,
        on_progress: &mut dyn FnMut(&RunProgress),
        cancel: &AtomicBool,
    ) -> Result<RunOutcome, EngineError> {
        let out = self.req.out.clone();
        std::fs::create_dir_all(&out).map_err(|source| EngineError::Output {
            path: out.clone(),
            source,
        })?;
        remove_temporaries(&out);
        let total = self.input.count;
        let start = self.manifest.prompts_done;
        let mut progress = RunProgress {
            prompts_done: start,
            prompts_total: total,
            shards_done: self.manifest.shards.len(),
            peak_memory_bytes: peak_rss(),
            ..RunProgress::default()
        };
        if self.manifest.complete || start >= total {
            self.manifest.complete = true;
            self.manifest.write(&out)?;
            on_progress(&progress);
            return Ok(RunOutcome::Completed);
        }
        self.manifest.write(&out)?;
        let per_token: Vec<(String, Vec<usize>)> = self
            .selection
            .hooks
            .iter()
            .filter(|h| h.layout == HookLayout::PerToken)
            .map(|h| (h.name.clone(), h.shape.clone()))
            .collect();
        let slot_of: HashMap<String, usize> = per_token
            .iter()
            .enumerate()
            .map(|(k, (n, _))| (n.clone(), k))
            .collect();
        let widths: HashMap<String, usize> = self
            .selection
            .hooks
            .iter()
            .map(|h| (h.name.clone(), h.per_token_elems()))
            .collect();
        let writes_shards = self.req.analysis != Analysis::Stats;
        let began = Instant::now();
        let mut prompts = self.input.prompts(start)?;
        let mut done = start;
        let mut shard_start = start;
        let pps = self.manifest.prompts_per_shard;
        while done < total {
            // One shard's prompts at a time, computed in order of length so batches pad little;
            // the shard stores them in dataset order.
            let want = pps.min(total - done);
            let mut items = Vec::with_capacity(want);
            for _ in 0..want {
                match prompts.next() {
                    Some(p) => items.push(p?),
                    None => break,
                }
            }
            if items.len() < want {
                return Err(EngineError::Input {
                    path: self.input.path.clone(),
                    detail: "the file changed while the run read it (fewer prompts than counted)"
                        .into(),
                });
            }
            let mut ids = Vec::with_capacity(items.len());
            for (index, text) in &items {
                ids.push(self.tokenizer.encode(text, *index)?);
            }
            let mut shard = writes_shards.then(|| {
                let listed: Vec<(usize, &[u32])> = items
                    .iter()
                    .zip(&ids)
                    .map(|((index, _), p)| (*index, p.as_slice()))
                    .collect();
                ShardBuffer::new(&per_token, &listed)
            });
            let mut order: Vec<usize> = (0..items.len()).collect();
            order.sort_by_key(|&slot| ids[slot].len());
            let mut in_shard = 0usize;
            for slots in order.chunks(self.req.batch) {
                let batch_ids: Vec<&[u32]> = slots.iter().map(|&s| ids[s].as_slice()).collect();
                let batch = make_batch(&batch_ids, &self.device)?;
                let mut cap = Capture::new(&self.selection);
                self.model.forward(
                    &batch,
                    self.selection.blocks_needed,
                    self.selection.needs_final,
                    &mut cap,
                )?;
                let tokens: usize = batch.lens.iter().sum();
                for (name, t) in &cap.per_token {
                    let width = widths.get(name).copied().unwrap_or(1);
                    let values = to_f32(t)?;
                    for (b, &slot) in slots.iter().enumerate() {
                        let start = b * batch.seq * width;
                        let rows = &values[start..start + batch.lens[b] * width];
                        match (&mut shard, slot_of.get(name)) {
                            (Some(shard), Some(&k)) => shard.put_rows(k, slot, rows),
                            (Some(_), None) => {}
                            (None, _) => self
                                .accumulators
                                .entry(name.clone())
                                .or_default()
                                .add_rows(rows, width),
                        }
                    }
                }
                for (name, t) in &cap.per_prompt {
                    for (b, &slot) in slots.iter().enumerate() {
                        let index = items[slot].0;
                        let len = batch.lens[b];
                        let sq = t.get(b)?.narrow(1, 0, len)?.narrow(2, 0, len)?;
                        let heads = sq.dim(0)?;
                        let values = to_f32(&sq)?;
                        match &mut shard {
                            Some(shard) => {
                                let mut bytes = vec![0u8; 4 * values.len()];
                                put_f32(&mut bytes, &values);
                                shard.push_per_prompt(
                                    format!("{name}@{index}"),
                                    vec![heads, len, len],
                                    bytes,
                                );
                            }
                            None => self
                                .accumulators
                                .entry(name.clone())
                                .or_default()
                                .add_rows(&values, len),
                        }
                    }
                }
                in_shard += slots.len();
                self.stats_tokens += tokens as u64;
                progress.prompts_done = done + in_shard;
                progress.tokens_done += tokens as u64;
                let secs = began.elapsed().as_secs_f64().max(1e-9);
                progress.tokens_per_second = progress.tokens_done as f64 / secs;
                let rate = (progress.prompts_done - start) as f64 / secs;
                progress.eta_seconds =
                    (rate > 0.0).then(|| (total - progress.prompts_done) as f64 / rate);
                progress.peak_memory_bytes = peak_rss();
                if in_shard < items.len() {
                    on_progress(&progress);
                }
            }
            done += items.len();
            match shard {
                Some(full) => {
                    let name = shard_name(self.manifest.shards.len());
                    let entry = full.write(&out, &name, &self.manifest.model.id, shard_start)?;
                    self.manifest.shards.push(entry);
                }
                None => {
                    let file = StatsFile::new(
                        self.accumulators.clone(),
                        done,
                        self.stats_tokens,
                        done == total,
                    );
                    write_stats(&out, &file)?;
                }
            }
            self.manifest.prompts_done = done;
            self.manifest.complete = done == total;
            self.manifest.write(&out)?;
            shard_start = done;
            progress.shards_done = self.manifest.shards.len();
            on_progress(&progress);
            if done < total && cancel.load(Ordering::SeqCst) {
                return Ok(RunOutcome::Cancelled);
            }
        }
        Ok(RunOutcome::Completed)
    }
}

/// Loads the model for callers that only need its hooks (e.g. `neuronmap extract --list-hooks`).
pub fn model_hooks(model: &str) -> Result<Vec<super::hooks::HookSpec>, EngineError> {
    let dir = super::resolve_model_dir(model)?;
    Ok(families::load(&dir, DType::F32, &Device::Cpu)?
        .model
        .hooks())
}

fn round_up(n: usize, multiple: usize) -> usize {
    n.div_ceil(multiple) * multiple
}

/// Prompts per shard: whole batches, about `shard_target_bytes` each, from the mean length of
/// the first prompts (deterministic for a given dataset, so a resumed run cuts the same shards).
fn shard_prompts(
    sel: &HookSelection,
    tok: &PromptTokenizer,
    input: &PromptFile,
    batch: usize,
    opts: &EngineOptions,
) -> Result<usize, EngineError> {
    let sample = input.count.min(64);
    let mut tokens = 0usize;
    for p in input.prompts(0)?.take(sample) {
        let (i, text) = p?;
        tokens += tok.encode(&text, i)?.len();
    }
    let mean = tokens as f64 / sample.max(1) as f64;
    Ok(prompts_per_shard(
        &sel.hooks,
        mean,
        batch,
        opts.shard_target_bytes,
    ))
}

/// Prompts per shard for the selected `hooks` when prompts have `mean_tokens` tokens: whole
/// batches of about `target_bytes` (at least one batch). The estimator uses it too: a shard's
/// byte buffers are held in memory until the shard is written.
pub fn prompts_per_shard(
    hooks: &[super::hooks::HookSpec],
    mean_tokens: f64,
    batch: usize,
    target_bytes: u64,
) -> usize {
    let mean = mean_tokens;
    let mut per_token = 8.0;
    let mut per_prompt = 0.0;
    for h in hooks {
        match h.layout {
            HookLayout::PerToken => per_token += 4.0 * h.per_token_elems() as f64,
            HookLayout::PerPrompt => per_prompt += 4.0 * h.per_token_elems() as f64 * mean * mean,
        }
    }
    let bytes = (mean * per_token + per_prompt).max(1.0);
    let prompts = (target_bytes as f64 / bytes).floor() as usize;
    (prompts / batch.max(1)).max(1) * batch.max(1)
}

fn check_resumable(old: &Manifest, new: &Manifest, dir: &Path) -> Result<(), EngineError> {
    let differs = |what: &str, a: String, b: String| -> Result<(), EngineError> {
        if a == b {
            Ok(())
        } else {
            Err(EngineError::Resume {
                dir: dir.to_path_buf(),
                detail: format!(
                    "{what} differs from the earlier run ({a} then, {b} now); use the same settings or another folder"
                ),
            })
        }
    };
    if old.schema_version != SCHEMA_VERSION {
        return Err(EngineError::Resume {
            dir: dir.to_path_buf(),
            detail: format!("it was written with schema version {}", old.schema_version),
        });
    }
    differs(
        "analysis",
        format!("{:?}", old.analysis),
        format!("{:?}", new.analysis),
    )?;
    differs(
        "model weights",
        old.model.weights_hash.clone(),
        new.model.weights_hash.clone(),
    )?;
    differs("dtype", old.dtype.clone(), new.dtype.clone())?;
    let names = |m: &Manifest| {
        m.hooks
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    differs("hooks", names(old), names(new))?;
    differs(
        "dataset",
        old.dataset.sha256.clone(),
        new.dataset.sha256.clone(),
    )?;
    differs("batch", old.batch.to_string(), new.batch.to_string())?;
    differs(
        "tokenizer settings",
        format!("{:?}", old.tokenizer),
        format!("{:?}", new.tokenizer),
    )?;
    for s in &old.shards {
        if !dir.join(&s.file).is_file() {
            return Err(EngineError::Resume {
                dir: dir.to_path_buf(),
                detail: format!("{} is listed in manifest.json but missing", s.file),
            });
        }
    }
    Ok(())
}

fn read_stats(dir: &Path) -> Result<StatsFile, EngineError> {
    let path = dir.join("stats.json");
    let text = std::fs::read_to_string(&path).map_err(|e| EngineError::Resume {
        dir: dir.to_path_buf(),
        detail: format!("cannot read stats.json ({e})"),
    })?;
    serde_json::from_str(&text).map_err(|e| EngineError::Resume {
        dir: dir.to_path_buf(),
        detail: format!("stats.json is not valid ({e})"),
    })
}

fn write_stats(dir: &Path, file: &StatsFile) -> Result<(), EngineError> {
    let mut text = serde_json::to_string_pretty(file).map_err(|e| EngineError::Output {
        path: dir.join("stats.json"),
        source: std::io::Error::other(e),
    })?;
    text.push('\n');
    write_atomic(dir, "stats.json", text.as_bytes())
}

/// Right-pads prompts into a `[B, S]` batch.
fn make_batch(ids: &[&[u32]], device: &Device) -> Result<Batch, EngineError> {
    let seq = ids.iter().map(|p| p.len()).max().unwrap_or(0);
    let mut flat = Vec::with_capacity(ids.len() * seq);
    for p in ids {
        flat.extend_from_slice(p);
        flat.extend(std::iter::repeat_n(0u32, seq - p.len()));
    }
    Ok(Batch {
        ids: Tensor::from_vec(flat.clone(), (ids.len(), seq), device)?,
        host_ids: flat,
        lens: ids.iter().map(|p| p.len()).collect(),
        seq,
    })
}

fn to_f32(t: &Tensor) -> Result<Vec<f32>, EngineError> {
    let t = t.to_dtype(DType::F32)?.flatten_all()?;
    Ok(t.to_vec1()?)
}

fn parse_device(name: &str) -> Result<Device, EngineError> {
    let bad = |detail: String| EngineError::Device {
        device: name.to_string(),
        detail,
    };
    match name {
        "cpu" => Ok(Device::Cpu),
        _ => {
            let n = name
                .strip_prefix("cuda")
                .map(|r| r.strip_prefix(':').unwrap_or(r))
                .ok_or_else(|| bad("use cpu or cuda:N".into()))?;
            let ordinal = if n.is_empty() {
                0
            } else {
                n.parse::<usize>()
                    .map_err(|_| bad("use cpu or cuda:N".into()))?
            };
            Device::new_cuda(ordinal).map_err(|e| {
                bad(format!(
                    "{e} (CUDA needs a build with --features cuda; see the README)"
                ))
            })
        }
    }
}

fn parse_dtype(name: Option<&str>, device: &Device) -> Result<DType, EngineError> {
    match name {
        None if device.is_cpu() => Ok(DType::F32),
        None => Ok(DType::BF16),
        Some("f32" | "float32") => Ok(DType::F32),
        Some("f16" | "float16") => Ok(DType::F16),
        Some("bf16" | "bfloat16") => Ok(DType::BF16),
        Some(other) => Err(EngineError::BadRequest(format!(
            "--dtype {other:?} is not one of f32, f16, bf16"
        ))),
    }
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "f32",
    }
}

/// The snapshot revision when `dir` is `.../snapshots/<rev>` in a Hugging Face cache.
fn snapshot_revision(dir: &Path) -> Option<String> {
    let parent = dir.parent()?;
    (parent.file_name()? == "snapshots")
        .then(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .flatten()
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
