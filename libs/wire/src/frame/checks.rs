//! Field rules shared by the encoder and the decoder, so both enforce exactly the same ones.

use super::{ChunkRange, FrameType};
use crate::error::FrameError;

pub(super) fn invalid(
    frame_type: FrameType,
    field: &'static str,
    reason: &'static str,
) -> FrameError {
    FrameError::InvalidField {
        frame_type,
        field,
        reason,
    }
}

pub(super) fn check_len(
    frame_type: FrameType,
    field: &'static str,
    len: usize,
    min: usize,
    max: usize,
) -> Result<(), FrameError> {
    if len < min || len > max {
        return Err(FrameError::BadLength {
            frame_type,
            field,
            len: len as u64,
            min: min as u64,
            max: max as u64,
        });
    }
    Ok(())
}

pub(super) fn check_id(ty: FrameType, request_id: u32) -> Result<(), FrameError> {
    if request_id == 0 {
        return Err(invalid(
            ty,
            "request_id",
            "0 is reserved for the connection",
        ));
    }
    Ok(())
}

pub(super) fn check_range(
    ty: FrameType,
    range: ChunkRange,
    max_len: u32,
) -> Result<(), FrameError> {
    if range.start >= range.end {
        return Err(invalid(ty, "chunk_range", "start must be below end"));
    }
    check_len(ty, "chunk_range", range.len() as usize, 1, max_len as usize)
}
