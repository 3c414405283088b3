//! Fuzzes `decode_data_prefix` (the receive path that moves Data payloads straight from the
//! socket): it never panics, and whenever it accepts a prefix and the whole frame is present,
//! the full decoder yields the same Data frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::{decode, decode_data_prefix, Decoded, Frame, ABSOLUTE_MAX_FRAME_LEN, DATA_PREFIX_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(p)) = decode_data_prefix(data, ABSOLUTE_MAX_FRAME_LEN) else {
        return;
    };
    assert!(p.payload_len >= 1);
    let total = DATA_PREFIX_LEN + p.payload_len;
    if data.len() < total {
        return;
    }
    match decode(data, ABSOLUTE_MAX_FRAME_LEN) {
        Ok(Decoded::Frame {
            frame: Frame::Data(d),
            consumed,
        }) => {
            assert_eq!(consumed, total);
            assert_eq!((d.request_id, d.offset, d.last), (p.request_id, p.offset, p.last));
            assert_eq!(d.payload.len(), p.payload_len);
            assert_eq!(&d.payload[..], &data[DATA_PREFIX_LEN..total]);
        }
        other => panic!("prefix accepted but the full decoder says {other:?}"),
    }
});
