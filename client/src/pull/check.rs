//! Structural check of pulled model files. A pulled file is byte-exact with what upstream
//! published (its Xet hash or sha256 proved that), but what upstream published may itself be a
//! damaged GGUF or safetensors file: truncated uploads, a header that points past the end, bad
//! UTF-8 in the vocabulary. `zest pull` checks every `.gguf` and `.safetensors` file it has in
//! the snapshot and reports the damaged ones, so the user learns before `from_pretrained` does.

use std::path::Path;

use crate::mmap::MappedFile;

/// Whether `path` (a repo path) names a file the check reads.
pub fn is_model_file(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".gguf") || lower.ends_with(".safetensors")
}

/// Checks the structure of the model file at `file` (memory-mapped; only the header pages and
/// metadata arrays are touched). `Ok(None)` when the file is sound, `Ok(Some(why))` when it is
/// damaged (`why` names the byte offset and the problem), `Err` when it cannot be read.
pub fn check_file(file: &Path) -> std::io::Result<Option<String>> {
    let map = MappedFile::open(file)?;
    Ok(match modelfile::check_structure(map.bytes()) {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_file_names() {
        assert!(is_model_file("model.safetensors"));
        assert!(is_model_file("dir/Model-Q4_K_M.GGUF"));
        assert!(!is_model_file("config.json"));
        assert!(!is_model_file("model.safetensors.index.json"));
    }

    #[test]
    fn sound_and_damaged_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A minimal safetensors file: one F32 tensor of 2 elements.
        let header = br#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let mut good = (header.len() as u64).to_le_bytes().to_vec();
        good.extend_from_slice(header);
        good.extend_from_slice(&[0u8; 8]);
        let p = dir.path().join("good.safetensors");
        std::fs::write(&p, &good).expect("write");
        assert_eq!(check_file(&p).expect("read"), None);

        // Truncated: the tensor's data runs past the end of the file.
        let bad = &good[..good.len() - 3];
        let p = dir.path().join("bad.safetensors");
        std::fs::write(&p, bad).expect("write");
        let why = check_file(&p).expect("read").expect("damaged");
        assert!(!why.is_empty());

        // Not a model file at all.
        let p = dir.path().join("junk.gguf");
        std::fs::write(&p, b"not a model file, just text").expect("write");
        assert!(check_file(&p).expect("read").is_some());

        // Empty file.
        let p = dir.path().join("empty.gguf");
        std::fs::write(&p, b"").expect("write");
        assert!(check_file(&p).expect("read").is_some());
    }
}
