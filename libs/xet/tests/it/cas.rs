//! CAS API JSON types against `reconstruction_examples.json` (exact wire names, v1 <-> v2) and
//! the `Range` header parser.

use proptest::prelude::*;
use serde_json::{json, Value};
use xet::cas::{
    format_range_header, parse_range_header, ByteRange, CasJwtInfo, ChunkRange, RangeError,
    ReconstructionV1, ReconstructionV2, UploadShardResponse, UploadXorbResponse,
};

use crate::data::{self, array, string, uint};

fn v1(v: &Value) -> ReconstructionV1 {
    serde_json::from_value(v.clone()).expect("v1 reconstruction parses")
}

fn v2(v: &Value) -> ReconstructionV2 {
    serde_json::from_value(v.clone()).expect("v2 reconstruction parses")
}

#[test]
fn full_file_v1_and_v2_parse_and_reserialize_exactly() {
    let ex = data::json("reconstruction_examples.json");
    let r1 = v1(&ex["full_file_v1"]);
    let r2 = v2(&ex["full_file_v2"]);
    assert_eq!(serde_json::to_value(&r1).expect("ser"), ex["full_file_v1"]);
    assert_eq!(serde_json::to_value(&r2).expect("ser"), ex["full_file_v2"]);
    let range_v2 = v2(&ex["range_request"]["v2_response"]);
    assert_eq!(
        serde_json::to_value(&range_v2).expect("ser"),
        ex["range_request"]["v2_response"]
    );

    assert_eq!(r2.terms.len(), 1);
    let term = &r2.terms[0];
    assert_eq!(u64::from(term.unpacked_length), uint(&ex["file_size"]));
    assert_eq!(term.range, ChunkRange::new(0, 3));
    assert_eq!(term.range.len(), 3);
    assert_eq!(r2.total_unpacked_len(), 5108);
    let fetch = &r2.xorbs[&term.hash][0];
    // Byte ranges are inclusive: the xorb's 3 records span [0, 382).
    let spans = array(&ex["chunk_byte_spans_in_xorb_exclusive_end"]);
    let last_end = uint(&array(&spans[2])[1]);
    assert_eq!(fetch.ranges[0].bytes, ByteRange::new(0, last_end - 1));
    assert_eq!(fetch.ranges[0].bytes.len(), 382);
}

#[test]
fn v1_to_v2_and_back() {
    let ex = data::json("reconstruction_examples.json");
    let r1 = v1(&ex["full_file_v1"]);
    let r2 = v2(&ex["full_file_v2"]);
    assert_eq!(ReconstructionV2::from(r1.clone()), r2);
    assert_eq!(r2.to_v1(), r1);
    assert_eq!(ReconstructionV1::from(r2.clone()), r1);

    let range_v2 = v2(&ex["range_request"]["v2_response"]);
    assert_eq!(ReconstructionV2::from(range_v2.to_v1()), range_v2);
}

#[test]
fn multi_range_url_splits_into_v1_entries_and_merges_back() {
    let hash = "a5da56d9a2a0f2db53bb8e140bac5691183e061d97c739784d4c39594dd0fa4f";
    let body = json!({
        "offset_into_first_range": 5,
        "terms": [
            {"hash": hash, "unpacked_length": 10, "range": {"start": 0, "end": 1}},
            {"hash": hash, "unpacked_length": 20, "range": {"start": 4, "end": 6}}
        ],
        "xorbs": {hash: [
            {"url": "https://t/x?a", "ranges": [
                {"chunks": {"start": 0, "end": 1}, "bytes": {"start": 0, "end": 19}},
                {"chunks": {"start": 4, "end": 6}, "bytes": {"start": 100, "end": 199}}
            ]},
            {"url": "https://t/x?b", "ranges": [
                {"chunks": {"start": 7, "end": 8}, "bytes": {"start": 300, "end": 310}}
            ]}
        ]}
    });
    let r2 = v2(&body);
    let r1 = r2.to_v1();
    let infos = &r1.fetch_info.values().next().expect("one xorb");
    assert_eq!(infos.len(), 3);
    assert_eq!(infos[1].url, "https://t/x?a");
    assert_eq!(infos[1].range, ChunkRange::new(4, 6));
    assert_eq!(infos[1].url_range, ByteRange::new(100, 199));
    let v1_json = serde_json::to_value(&r1).expect("ser");
    assert_eq!(
        v1_json["fetch_info"][hash][2]["url_range"],
        json!({"start": 300, "end": 310})
    );
    assert_eq!(ReconstructionV2::from(r1), r2);
}

#[test]
fn wrong_shapes_are_errors() {
    let bad_hash = json!({"offset_into_first_range": 0, "terms": [
        {"hash": "xyz", "unpacked_length": 1, "range": {"start": 0, "end": 1}}], "xorbs": {}});
    assert!(serde_json::from_value::<ReconstructionV2>(bad_hash).is_err());
    let negative = json!({"offset_into_first_range": -1, "terms": [], "xorbs": {}});
    assert!(serde_json::from_value::<ReconstructionV2>(negative).is_err());
    let missing = json!({"terms": [], "xorbs": {}});
    assert!(serde_json::from_value::<ReconstructionV2>(missing).is_err());
}

#[test]
fn jwt_info_is_camel_case() {
    let body =
        r#"{"casUrl":"https://cas-server.xethub.hf.co","exp":1756489133,"accessToken":"xet_abc"}"#;
    let t: CasJwtInfo = serde_json::from_str(body).expect("parse");
    assert_eq!(t.cas_url, "https://cas-server.xethub.hf.co");
    assert_eq!(t.exp, 1_756_489_133);
    assert_eq!(t.access_token, "xet_abc");
    let back: Value = serde_json::to_value(&t).expect("ser");
    assert_eq!(back, serde_json::from_str::<Value>(body).expect("json"));
}

#[test]
fn upload_responses() {
    let x: UploadXorbResponse = serde_json::from_str(r#"{"was_inserted":false}"#).expect("parse");
    assert!(!x.was_inserted);
    let s: UploadShardResponse = serde_json::from_str(r#"{"result":1}"#).expect("parse");
    assert_eq!(s.result, 1);
}

#[test]
fn range_header_of_the_example() {
    let ex = data::json("reconstruction_examples.json");
    let header = string(&ex["range_request"]["request_header"]);
    let value = header.strip_prefix("Range: ").expect("header line");
    let ranges = parse_range_header(value, Some(uint(&ex["file_size"]))).expect("valid");
    assert_eq!(ranges, vec![ByteRange::new(100, 200)]);
    assert_eq!(ranges[0].len(), 101);
    // The response skips 88 bytes of chunk 1, which starts after the 12-byte chunk 0.
    let r = v2(&ex["range_request"]["v2_response"]);
    assert_eq!(r.offset_into_first_range, 100 - 12);
}

#[test]
fn range_header_forms() {
    let p = parse_range_header;
    let r = ByteRange::new;
    assert_eq!(p("bytes=0-0", None), Ok(vec![r(0, 0)]));
    assert_eq!(p("bytes=5-", None), Ok(vec![r(5, u64::MAX)]));
    assert_eq!(p("bytes=5-", Some(10)), Ok(vec![r(5, 9)]));
    assert_eq!(p("bytes=5-100", Some(10)), Ok(vec![r(5, 9)]));
    assert_eq!(p("bytes=-3", Some(10)), Ok(vec![r(7, 9)]));
    assert_eq!(p("bytes=-30", Some(10)), Ok(vec![r(0, 9)]));
    assert_eq!(
        p("bytes=0-1, 4-5 ,,8-", Some(10)),
        Ok(vec![r(0, 1), r(4, 5), r(8, 9)])
    );
    assert_eq!(p("Bytes=1-2", None), Ok(vec![r(1, 2)]));
    // 416: nothing inside the content.
    assert_eq!(
        p("bytes=10-20", Some(10)),
        Err(RangeError::NotSatisfiable { len: 10 })
    );
    assert_eq!(
        p("bytes=-0", Some(10)),
        Err(RangeError::NotSatisfiable { len: 10 })
    );
    assert_eq!(
        p("bytes=0-", Some(0)),
        Err(RangeError::NotSatisfiable { len: 0 })
    );
    assert!(p("bytes=10-20", Some(10)).is_err_and(|e| e.is_not_satisfiable()));
    // One satisfiable range is enough; the others are dropped.
    assert_eq!(p("bytes=50-60,2-3", Some(10)), Ok(vec![r(2, 3)]));
    // 400s.
    assert_eq!(
        p("bytes=5-4", None),
        Err(RangeError::Reversed { start: 5, end: 4 })
    );
    assert_eq!(p("items=0-1", None), Err(RangeError::Unit));
    assert_eq!(p("0-1", None), Err(RangeError::Unit));
    assert_eq!(p("bytes=", None), Err(RangeError::Empty));
    assert_eq!(p("bytes= , ", None), Err(RangeError::Empty));
    assert_eq!(p("bytes=-5", None), Err(RangeError::SuffixWithoutLength(5)));
    for bad in [
        "bytes=a-1",
        "bytes=1",
        "bytes=+1-2",
        "bytes=1-2-3",
        "bytes=--1",
        "bytes=1 -2",
        "bytes=-",
        "bytes=99999999999999999999-",
    ] {
        assert!(matches!(p(bad, None), Err(RangeError::Syntax(_))), "{bad}");
    }
    let many = format!("bytes={}", vec!["0-1"; 5000].join(","));
    assert_eq!(p(&many, None), Err(RangeError::TooMany));
}

proptest! {
    #[test]
    fn range_header_never_panics(s in "\\PC{0,64}", len in proptest::option::of(any::<u64>())) {
        let _ = parse_range_header(&s, len);
        let _ = parse_range_header(&format!("bytes={s}"), len);
    }

    #[test]
    fn formatted_ranges_parse_back(pairs in proptest::collection::vec((any::<u64>(), any::<u64>()), 1..20)) {
        let ranges: Vec<ByteRange> =
            pairs.iter().map(|&(a, b)| ByteRange::new(a.min(b), a.max(b))).collect();
        prop_assert_eq!(parse_range_header(&format_range_header(&ranges), None), Ok(ranges));
    }
}
