//! Hook points: TransformerLens names, per-token shapes, glob selection and the layer at which a
//! forward pass may stop.

use std::collections::BTreeSet;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use super::error::EngineError;

/// Where a hook sits in the forward pass, which decides how far the pass must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookSite {
    /// Before the first block (embeddings).
    Embed,
    /// Inside block `i`.
    Block(usize),
    /// After the last block (the final norm).
    Final,
}

/// How a hook's values are laid out in a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookLayout {
    /// One row per token: the shard tensor is `[T, ...shape]`.
    PerToken,
    /// Two position axes: one tensor per prompt, `{hook}@{prompt_index}`, `[head, len, len]`.
    PerPrompt,
}

/// One hook point of a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct HookSpec {
    /// TransformerLens name, e.g. `blocks.3.attn.hook_q`.
    pub name: String,
    /// Where it sits.
    pub site: HookSite,
    /// Shape per token (per-token hooks) or `[head]` (per-prompt hooks, followed by len, len).
    pub shape: Vec<usize>,
    /// How it is stored.
    pub layout: HookLayout,
}

impl HookSpec {
    /// A per-token hook.
    pub fn token(name: impl Into<String>, site: HookSite, shape: Vec<usize>) -> Self {
        Self {
            name: name.into(),
            site,
            shape,
            layout: HookLayout::PerToken,
        }
    }

    /// A hook with two position axes (`[head, q_pos, k_pos]`).
    pub fn square(name: impl Into<String>, site: HookSite, heads: usize) -> Self {
        Self {
            name: name.into(),
            site,
            shape: vec![heads],
            layout: HookLayout::PerPrompt,
        }
    }

    /// Elements per token (per-token hooks).
    pub fn per_token_elems(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The hooks a run materialises, and how far the forward pass must go.
#[derive(Debug, Clone)]
pub struct HookSelection {
    /// Selected hooks in the model's order.
    pub hooks: Vec<HookSpec>,
    names: BTreeSet<String>,
    /// Blocks that must run (0 when only embedding hooks are selected).
    pub blocks_needed: usize,
    /// Whether the final norm must run.
    pub needs_final: bool,
}

impl HookSelection {
    /// Selects the hooks matching any of `globs` among `available`. Every glob must match at
    /// least one hook; otherwise the error lists close matches.
    pub fn select(
        available: &[HookSpec],
        globs: &[String],
        n_blocks: usize,
    ) -> Result<Self, EngineError> {
        if globs.is_empty() {
            return Err(EngineError::BadRequest(
                "no hooks given: pass --hooks with a glob such as 'blocks.*.hook_resid_post'"
                    .into(),
            ));
        }
        let mut matchers = Vec::with_capacity(globs.len());
        for g in globs {
            matchers.push((g, compile(g)?));
        }
        let mut names = BTreeSet::new();
        for (glob, m) in &matchers {
            let mut any = false;
            for h in available {
                if m.is_match(&h.name) {
                    names.insert(h.name.clone());
                    any = true;
                }
            }
            if !any {
                return Err(EngineError::UnknownHook {
                    pattern: (*glob).clone(),
                    close: close_matches(glob, available.iter().map(|h| h.name.as_str())),
                });
            }
        }
        let hooks: Vec<HookSpec> = available
            .iter()
            .filter(|h| names.contains(&h.name))
            .cloned()
            .collect();
        let mut blocks_needed = 0;
        let mut needs_final = false;
        for h in &hooks {
            match h.site {
                HookSite::Embed => {}
                HookSite::Block(i) => blocks_needed = blocks_needed.max(i + 1),
                HookSite::Final => {
                    needs_final = true;
                    blocks_needed = n_blocks;
                }
            }
        }
        Ok(Self {
            hooks,
            names,
            blocks_needed,
            needs_final,
        })
    }

    /// Whether the hook called `name` is selected.
    pub fn wants(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

fn compile(glob: &str) -> Result<GlobMatcher, EngineError> {
    GlobBuilder::new(glob)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| EngineError::BadRequest(format!("hook glob {glob:?} is not valid: {e}")))
}

/// Up to five hook names closest to `pattern` (edit distance; a glob's `*` read as `0`).
pub fn close_matches<'a>(pattern: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let probe = pattern.replace('*', "0");
    let mut scored: Vec<(usize, &str)> = names.map(|n| (edit_distance(&probe, n), n)).collect();
    scored.sort();
    let limit = (probe.len() / 3).max(3);
    scored
        .into_iter()
        .filter(|(d, _)| *d <= limit)
        .take(5)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Vec<HookSpec> {
        let mut v = vec![HookSpec::token("hook_embed", HookSite::Embed, vec![8])];
        for i in 0..4 {
            v.push(HookSpec::token(
                format!("blocks.{i}.hook_resid_pre"),
                HookSite::Block(i),
                vec![8],
            ));
            v.push(HookSpec::square(
                format!("blocks.{i}.attn.hook_pattern"),
                HookSite::Block(i),
                2,
            ));
        }
        v.push(HookSpec::token(
            "ln_final.hook_normalized",
            HookSite::Final,
            vec![8],
        ));
        v
    }

    #[test]
    fn globs_select_and_stop_early() {
        let s = HookSelection::select(&catalog(), &["blocks.1.*".into()], 4).unwrap();
        assert_eq!(s.hooks.len(), 2);
        assert_eq!(s.blocks_needed, 2);
        assert!(!s.needs_final);
        let s = HookSelection::select(&catalog(), &["hook_embed".into()], 4).unwrap();
        assert_eq!(s.blocks_needed, 0);
        let s = HookSelection::select(&catalog(), &["ln_final.*".into()], 4).unwrap();
        assert_eq!(s.blocks_needed, 4);
        assert!(s.needs_final);
        let s = HookSelection::select(&catalog(), &["blocks.*.hook_resid_pre".into()], 4).unwrap();
        assert_eq!(s.hooks.len(), 4);
        assert!(s.wants("blocks.3.hook_resid_pre"));
        assert!(!s.wants("blocks.3.attn.hook_pattern"));
    }

    #[test]
    fn unknown_hook_suggests_names() {
        let err =
            HookSelection::select(&catalog(), &["blocks.*.hook_resid_pr".into()], 4).unwrap_err();
        match err {
            EngineError::UnknownHook { close, .. } => {
                assert_eq!(close[0], "blocks.0.hook_resid_pre")
            }
            other => panic!("{other}"),
        }
        assert!(HookSelection::select(&catalog(), &[], 4).is_err());
    }
}
