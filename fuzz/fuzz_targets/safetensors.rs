//! Fuzzes the safetensors header parser: arbitrary bytes never panic; a successful parse has its
//! tensors tiling the data section exactly (sorted, contiguous, ending at the end of the input),
//! and re-parsing just the header prefix gives the same header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelfile::safetensors::SafetensorsFile;
use modelfile::Error;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let _ = SafetensorsFile::parse_prefix(data, None);
    let Ok(file) = SafetensorsFile::parse(data) else {
        return;
    };
    let mut ranges: Vec<_> = file.tensors().iter().map(|t| t.data_range()).collect();
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut covered = file.data_offset();
    for r in ranges {
        assert_eq!(r.start, covered, "gap or overlap");
        covered = r.end;
    }
    assert_eq!(covered, len, "data section not covered exactly");
    let header = file.header_len() as usize;
    let prefix = SafetensorsFile::parse_prefix(&data[..header], Some(len)).expect("header prefix");
    assert_eq!(prefix, file);
    assert_eq!(
        SafetensorsFile::parse_prefix(&data[..header - 1], Some(len)),
        Err(Error::Incomplete {
            needed: header as u64
        })
    );
    let summary = modelfile::ModelFile::Safetensors(file).summary();
    let _ = modelfile::render_text(&summary);
});
