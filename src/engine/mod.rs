//! The analysis engine: hooked forward passes on candle, tokenisation, streamed extraction and
//! the output format.

pub mod request;
