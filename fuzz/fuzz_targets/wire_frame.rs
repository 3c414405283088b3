//! Fuzzes the wire frame decoder: decoding arbitrary bytes never panics; a decoded frame
//! re-encodes to exactly the bytes it consumed (the encoding is canonical); `decode_buf` agrees
//! with `decode`; and the frames decoded from the input, fed to a connection state machine in
//! order, never make it panic.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wire::{
    decode, decode_buf, Capabilities, Connection, Decoded, Handshake, Limits, Role,
    ABSOLUTE_MAX_FRAME_LEN,
};

fuzz_target!(|data: &[u8]| {
    let mut conn = Connection::new(
        Handshake::new("fuzz", Role::Edge, Capabilities::SERVE, &Limits::default()),
        Limits::default(),
    );
    let h = conn.handshake_frame();
    conn.on_send(&h).expect("our own handshake is valid");

    let mut rest = data;
    let mut buf = BytesMut::from(data);
    // Every iteration consumes at least the 6-byte header, so this ends.
    loop {
        let by_slice = decode(rest, ABSOLUTE_MAX_FRAME_LEN);
        let by_buf = decode_buf(&mut buf, ABSOLUTE_MAX_FRAME_LEN);
        match by_slice {
            Ok(Decoded::Frame { frame, consumed }) => {
                assert!(consumed >= 6 && consumed <= rest.len());
                let again = frame.to_vec().expect("a decoded frame encodes");
                assert_eq!(again, &rest[..consumed], "re-encoding differs");
                assert_eq!(frame.encoded_len(), consumed);
                assert_eq!(by_buf.as_ref().ok().and_then(|f| f.as_ref()), Some(&frame));
                let _ = conn.on_receive(&frame);
                rest = &rest[consumed..];
                assert_eq!(buf.len(), rest.len());
            }
            Ok(Decoded::Incomplete { needed }) => {
                assert!(needed >= 1);
                assert_eq!(by_buf, Ok(None));
                break;
            }
            Err(e) => {
                assert_eq!(by_buf, Err(e));
                break;
            }
        }
    }
});
