//! The model catalogue: the built-in registry of well-known models, the local Hugging Face
//! cache, model folders from the config, safetensors header reading and the per-family
//! `config.json` formulas.
//!
//! Entry points: [`Catalogue::load`] lists everything, [`resolve::resolve_model_dir`] finds the
//! folder of a MODEL string, [`hf_cache::resolve_snapshot`] finds one cached revision.

pub mod catalogue;
pub mod config_json;
pub mod hf_cache;
pub mod registry;
pub mod resolve;
pub mod safetensors_header;

pub use catalogue::{Catalogue, CatalogueEntry, CatalogueSettings, Source};
pub use config_json::{Architecture, Family};
