//! Fuzzes the GGUF header parser: arbitrary bytes never panic; a successful parse has every
//! tensor inside the input, and re-parsing just the header prefix gives the same header, while one
//! byte less asks for more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelfile::gguf::GgufFile;
use modelfile::Error;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let _ = GgufFile::parse_prefix(data, None);
    let Ok(file) = GgufFile::parse(data) else {
        let _ = modelfile::check_structure(data);
        return;
    };
    let header = file.header_len();
    assert!(header <= len && file.data_offset() >= header);
    assert_eq!(file.data_offset() % file.alignment(), 0);
    for t in file.tensors() {
        let r = t.data_range();
        assert!(
            r.start >= file.data_offset() && r.end <= len,
            "tensor outside the input"
        );
        assert_eq!(t.n_bytes % t.ggml_type.type_size(), 0);
    }
    let prefix =
        GgufFile::parse_prefix(&data[..header as usize], Some(len)).expect("header prefix");
    assert_eq!(prefix, file);
    if header > 0 {
        match GgufFile::parse_prefix(&data[..header as usize - 1], Some(len)) {
            Err(Error::Incomplete { needed }) => assert_eq!(needed, header),
            other => panic!("one byte short of the header: {other:?}"),
        }
    }
    for entry in file.metadata() {
        if let Some(array) = entry.value.as_array() {
            assert!(array.iter().count() as u64 <= array.len());
        }
    }
    let summary = modelfile::ModelFile::Gguf(file).summary();
    let _ = modelfile::render_text(&summary);
});
