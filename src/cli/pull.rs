//! `neuronmap pull MODEL [--revision R]`: downloads a model's config, tokenizer and safetensors
//! weights into the standard Hugging Face cache through hf-hub, with a progress bar.
//!
//! With `HF_HUB_OFFLINE=1`, or when the hub cannot be reached, it fails at once with a message
//! that says so; nothing is written.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use hf_hub::api::sync::ApiBuilder;
use hf_hub::api::Progress;
use hf_hub::{Cache, Repo, RepoType};
use indicatif::{ProgressBar, ProgressStyle};

use super::GlobalArgs;
use crate::config::Config;
use crate::models::hf_cache::{self, process_env};

/// Default hub address (overridden by `HF_ENDPOINT`, as in `huggingface_hub`).
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How long the reachability probe waits before saying the hub is unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Files fetched besides the weights, when the repo has them.
const SIDE_FILES: [&str; 5] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
];

/// Arguments of `neuronmap pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Hugging Face repo id, e.g. `gpt2` or `meta-llama/Llama-3.2-1B`.
    pub model: String,
    /// Branch, tag or commit (default: main).
    #[arg(long, value_name = "R")]
    pub revision: Option<String>,
}

/// A download progress bar for hf-hub.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn init(&mut self, size: usize, filename: &str) {
        self.0.set_length(size as u64);
        self.0.set_position(0);
        self.0.set_message(filename.to_string());
    }

    fn update(&mut self, size: usize) {
        self.0.inc(size as u64);
    }

    fn finish(&mut self) {
        self.0.finish();
    }
}

fn bar() -> Bar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Bar(bar)
}

/// Host and port of an endpoint URL (`https://host[:port][/...]`).
fn host_port(endpoint: &str) -> Option<(String, u16)> {
    let (scheme, rest) = endpoint.split_once("://")?;
    let authority = rest.split('/').next()?;
    let default_port = if scheme == "http" { 80 } else { 443 };
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default_port)),
    }
}

/// Fails fast when the hub's address does not resolve or accept a connection.
fn probe(endpoint: &str) -> anyhow::Result<()> {
    let (host, port) = host_port(endpoint)
        .with_context(|| format!("HF_ENDPOINT \"{endpoint}\" is not a URL like https://host"))?;
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .with_context(|| {
            format!("cannot reach {endpoint} (no network?): name lookup of {host} failed")
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    anyhow::bail!(
        "cannot reach {endpoint} (no network?): {}",
        last.map_or_else(|| "no address".to_string(), |e| e.to_string())
    )
}

/// Downloads the model into the cache and prints the snapshot folder.
pub fn run(args: &PullArgs, _global: &GlobalArgs, _config: &Config) -> anyhow::Result<ExitCode> {
    if hf_cache::offline(&process_env) {
        anyhow::bail!(
            "HF_HUB_OFFLINE is set, so `pull {}` makes no network attempt; unset HF_HUB_OFFLINE or copy the model into the cache by other means",
            args.model
        );
    }
    let cache_root = hf_cache::cache_root(&process_env).context(
        "no Hugging Face cache location: set HF_HUB_CACHE or HF_HOME (HOME is not set either)",
    )?;
    let endpoint = process_env("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    probe(&endpoint)?;

    let cache = Cache::new(cache_root.clone());
    let token = process_env("HF_TOKEN").or_else(|| cache.token());
    let api = ApiBuilder::from_cache(cache)
        .with_endpoint(endpoint.clone())
        .with_token(token)
        .with_progress(false)
        .build()
        .context("cannot set up the Hugging Face client")?;
    let revision = args.revision.clone().unwrap_or_else(|| "main".to_string());
    let repo = api.repo(Repo::with_revision(
        args.model.clone(),
        RepoType::Model,
        revision.clone(),
    ));
    let info = repo.info().with_context(|| {
        format!(
            "cannot get the file list of \"{}\" at revision {revision} from {endpoint}; check the id (and HF_TOKEN for gated models)",
            args.model
        )
    })?;
    let names: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let mut wanted: Vec<String> = SIDE_FILES
        .iter()
        .filter(|f| names.contains(f))
        .map(|f| f.to_string())
        .collect();
    if names.contains(&"model.safetensors.index.json") {
        let index = repo
            .download_with_progress("model.safetensors.index.json", bar())
            .context("downloading model.safetensors.index.json")?;
        wanted.extend(crate::models::safetensors_header::read_index(&index)?);
    } else if names.contains(&"model.safetensors") {
        wanted.push("model.safetensors".to_string());
    } else {
        anyhow::bail!(
            "\"{}\" has no safetensors weights at revision {revision} (files: {}); the engine needs model.safetensors",
            args.model,
            names.join(", ")
        );
    }
    for file in &wanted {
        repo.download_with_progress(file, bar())
            .with_context(|| format!("downloading {file} of {}", args.model))?;
    }
    let snapshot = hf_cache::resolve_snapshot(&cache_root, &args.model, Some(&revision))
        .or_else(|_| hf_cache::resolve_snapshot(&cache_root, &args.model, Some(&info.sha)))?;
    super::print_stdout(&format!("{}\n", snapshot.display()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_host_and_port() {
        assert_eq!(
            host_port("https://huggingface.co"),
            Some(("huggingface.co".to_string(), 443))
        );
        assert_eq!(
            host_port("http://mirror:8080/hub"),
            Some(("mirror".to_string(), 8080))
        );
        assert_eq!(host_port("huggingface.co"), None);
    }
}
