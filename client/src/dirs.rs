//! Where things live on this machine: the Hugging Face cache and token (as `huggingface_hub`
//! finds them) and the user's cache folder.

use std::path::PathBuf;

use crate::env_vars;

/// `$HF_HUB_CACHE`, or `$HF_HOME/hub`, or `~/.cache/huggingface/hub`.
pub fn hub_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os(env_vars::HF_HUB_CACHE) {
        return p.into();
    }
    hf_home().join("hub")
}

fn hf_home() -> PathBuf {
    if let Some(p) = std::env::var_os(env_vars::HF_HOME) {
        return p.into();
    }
    home_cache().join("huggingface")
}

/// `$XDG_CACHE_HOME`, or `~/.cache`.
pub fn home_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return p.into();
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
}

/// `HF_TOKEN`, or the token file `$HF_HOME/token`.
pub fn hf_token() -> Option<String> {
    if let Ok(t) = std::env::var(env_vars::HF_TOKEN) {
        if !t.trim().is_empty() {
            return Some(t.trim().to_string());
        }
    }
    std::fs::read_to_string(hf_home().join("token"))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}
