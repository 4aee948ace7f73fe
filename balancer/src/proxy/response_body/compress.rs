//! A route's `compress` applied to a backend's response: [`wrap`] rewrites the head (coding,
//! `Vary`, no length, a weak `ETag`) when [`Compress::applies`], and [`Compressed`] encodes the
//! body as it streams, one backend chunk at a time: the encoder holds its window and the chunk
//! at hand, never the whole body, and the client's pace (hyper polls only when it can write)
//! paces the backend's. What the encoder holds is flushed whenever the backend pauses, and after
//! every chunk of a server-sent event stream, so nothing waits behind a quiet upstream. Each
//! response is counted once, when its body ends (or is dropped): its coding and its bytes in and
//! out (`balancer_compressed_responses_total`, `balancer_compression_bytes_total`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::codecs::brotli::params::EncoderParams as BrotliParams;
use async_compression::codecs::flate::params::FlateEncoderParams;
use async_compression::codecs::zstd::params::CParameter;
use async_compression::codecs::{BrotliEncoder, EncodeV2, GzipEncoder, ZstdEncoder};
use async_compression::core::util::{PartialBuffer, WriteBuffer};
use async_compression::Level;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::Response;
use hyper::body::{Body, Frame};

use super::ResponseBody;
use crate::policy::compress::{Codec, Compress};
use crate::runtime::metrics::CompressionMetrics;
use crate::upstream::{BoxError, Release};

/// Each step of the output grows by this much (the encoders' own output granularity).
const OUT_STEP: usize = 16 * 1024;

/// Brotli's window (`lgwin`): 2 MiB, zstd's at its default levels, instead of brotli's 4 MiB.
const BROTLI_WINDOW: i32 = 21;

/// `resp` encoded with `codec` when `compress` applies to it; otherwise `resp` untouched. Only a
/// backend's body is encoded, never one of the balancer's own short answers; `metrics` counts it.
pub fn wrap<B: Body, L: Release>(
    resp: Response<ResponseBody<B, L>>,
    codec: Codec,
    compress: &Compress,
    metrics: &CompressionMetrics,
) -> Response<ResponseBody<B, L>> {
    let (mut parts, body) = resp.into_parts();
    // A length the backend's head did not give (HTTP/2 may leave it to the body) counts too.
    let (small, known) = match &body {
        ResponseBody::Upstream { inner, .. } => {
            let known = inner.size_hint().exact();
            (known.is_some_and(|len| len < compress.min_size), known)
        }
        _ => (true, None),
    };
    if small || !compress.applies(parts.status, &parts.headers) {
        return Response::from_parts(parts, body);
    }
    let h = &mut parts.headers;
    let flush_each = h
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| starts_with_ignore_case(t.as_bytes(), b"text/event-stream"));
    h.remove(header::CONTENT_LENGTH);
    h.remove(header::CONTENT_ENCODING);
    // A range of the encoded bytes would not be one of the backend's.
    h.remove(header::ACCEPT_RANGES);
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(codec.token()),
    );
    vary_accept_encoding(h);
    weaken_etag(h);
    let encoder = Compressed {
        body,
        encoder: encoder(codec, compress.level(codec), known),
        state: State::Reading,
        flush_each,
        unflushed: false,
        tally: Some(Tally::new(codec, metrics)),
    };
    Response::from_parts(parts, ResponseBody::Compressed(Box::new(encoder)))
}

fn starts_with_ignore_case(value: &[u8], prefix: &[u8]) -> bool {
    value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `Vary: Accept-Encoding`, merged into the backend's own `Vary` (kept when it already says so
/// or says `*`).
fn vary_accept_encoding(h: &mut HeaderMap) {
    let covered = h.get_all(header::VARY).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|t| {
            let t = t.trim_ascii();
            t == b"*" || t.eq_ignore_ascii_case(b"accept-encoding")
        })
    });
    if covered {
        return;
    }
    let merged = match h.get(header::VARY) {
        Some(old) if h.get_all(header::VARY).iter().count() == 1 => {
            let mut value = old.as_bytes().to_vec();
            value.extend_from_slice(b", Accept-Encoding");
            HeaderValue::from_bytes(&value).ok()
        }
        _ => None,
    };
    match merged {
        Some(value) => {
            h.insert(header::VARY, value);
        }
        None => {
            h.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
    }
}

/// A strong `ETag` made weak: the encoded bytes are not the backend's.
fn weaken_etag(h: &mut HeaderMap) {
    let Some(tag) = h.get(header::ETAG) else {
        return;
    };
    if tag.as_bytes().starts_with(b"\"") {
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(tag.as_bytes());
        if let Ok(weak) = HeaderValue::from_bytes(&weak) {
            h.insert(header::ETAG, weak);
        }
    }
}

/// A fresh encoder for `codec` at `level` (already within the codec's range). With the body's
/// length known, the window shrinks to fit it, and with it the tables the encoder clears for
/// every response: a 4 KiB stylesheet at brotli 5 cost 2.5 M instructions with the full
/// window's tables, half of them clearing memory.
fn encoder(codec: Codec, level: i32, known: Option<u64>) -> Box<dyn EncodeV2 + Send> {
    match codec {
        Codec::Zstd => match known {
            // zstd derives its hash and chain tables from the window (at most its log + 1).
            Some(len) => Box::new(ZstdEncoder::new_with_params(
                level,
                &[CParameter::window_log(window_bits(len, ZSTD_WINDOW))],
            )),
            None => Box::new(ZstdEncoder::new(level)),
        },
        Codec::Br => {
            let mut params = BrotliParams::default().quality(Level::Precise(level));
            params = match known {
                Some(len) => params
                    .window_size(window_bits(len, BROTLI_WINDOW as u32) as i32)
                    .size_hint(usize::try_from(len).unwrap_or(usize::MAX)),
                None => params.window_size(BROTLI_WINDOW),
            };
            Box::new(BrotliEncoder::new(params))
        }
        Codec::Gzip => Box::new(GzipEncoder::new(FlateEncoderParams::from(Level::Precise(
            level,
        )))),
    }
}

/// zstd's window for a body of a known length: at most 2 MiB, its default at level 3.
const ZSTD_WINDOW: u32 = 21;

/// The log of the smallest window holding `len` bytes, within 10 (both codecs' least) and `max`.
fn window_bits(len: u64, max: u32) -> u32 {
    let bits = u64::BITS - len.saturating_sub(1).leading_zeros();
    bits.clamp(10, max)
}

enum State {
    Reading,
    /// The encoder is finished; the backend's trailers go out last.
    Trailers(HeaderMap),
    Done,
}

/// A backend's body encoded as it streams (see the module's documentation).
pub struct Compressed<B: Body, L: Release> {
    body: ResponseBody<B, L>,
    encoder: Box<dyn EncodeV2 + Send>,
    state: State,
    /// `text/event-stream`: every chunk goes out at once.
    flush_each: bool,
    /// Input went in since the last flush.
    unflushed: bool,
    /// Counted into the metrics (and `None`) once the body ends or is dropped.
    tally: Option<Tally>,
}

/// One response's counts, added to the metrics once.
struct Tally {
    responses: prometheus_client::metrics::counter::Counter,
    bytes_in: prometheus_client::metrics::counter::Counter,
    bytes_out: prometheus_client::metrics::counter::Counter,
    read: u64,
    written: u64,
}

impl Tally {
    fn new(codec: Codec, metrics: &CompressionMetrics) -> Self {
        let index = Codec::ALL.iter().position(|&c| c == codec).unwrap_or(0);
        Tally {
            responses: metrics.responses[index].clone(),
            bytes_in: metrics.bytes_in.clone(),
            bytes_out: metrics.bytes_out.clone(),
            read: 0,
            written: 0,
        }
    }

    fn count(self) {
        self.responses.inc();
        self.bytes_in.inc_by(self.read);
        self.bytes_out.inc_by(self.written);
    }
}

impl<B: Body, L: Release> Drop for Compressed<B, L> {
    fn drop(&mut self) {
        if let Some(tally) = self.tally.take() {
            tally.count();
        }
    }
}

/// What to ask of the encoder.
#[derive(Clone, Copy)]
enum Step<'a> {
    Encode(&'a [u8]),
    Flush,
    Finish,
}

/// Runs `step` to completion, the output growing by [`OUT_STEP`] as needed.
fn run(encoder: &mut dyn EncodeV2, step: Step<'_>) -> io::Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut input = PartialBuffer::new(match step {
        Step::Encode(data) => data,
        _ => &[][..],
    });
    loop {
        let start = out.len();
        out.resize(start + OUT_STEP, 0);
        let consumed_before = input.written_len();
        let mut buf = WriteBuffer::new_initialized(&mut out[start..]);
        let done = match step {
            Step::Encode(_) => {
                encoder.encode(&mut input, &mut buf)?;
                input.unwritten().is_empty()
            }
            Step::Flush => encoder.flush(&mut buf)?,
            Step::Finish => encoder.finish(&mut buf)?,
        };
        let written = buf.written_len();
        out.truncate(start + written);
        if done {
            return Ok(out);
        }
        if written == 0 && input.written_len() == consumed_before {
            return Err(io::Error::other("the encoder made no progress"));
        }
    }
}

impl<B, L> Compressed<B, L>
where
    B: Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static> + Unpin,
    L: Release + Unpin,
{
    /// The encoder's output for `step`, as a frame when there is any; counted when `step`
    /// finishes the stream.
    fn step(&mut self, step: Step<'_>) -> Result<Option<Frame<Bytes>>, BoxError> {
        let out = run(&mut *self.encoder, step).inspect_err(|_| self.state = State::Done)?;
        if let Some(tally) = &mut self.tally {
            if let Step::Encode(data) = step {
                tally.read += data.len() as u64;
            }
            tally.written += out.len() as u64;
        }
        if matches!(step, Step::Finish) {
            if let Some(tally) = self.tally.take() {
                tally.count();
            }
        }
        Ok((!out.is_empty()).then(|| Frame::data(Bytes::from(out))))
    }

    pub(super) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match std::mem::replace(&mut self.state, State::Reading) {
                State::Done => {
                    self.state = State::Done;
                    return Poll::Ready(None);
                }
                State::Trailers(trailers) => {
                    self.state = State::Done;
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                State::Reading => {}
            }
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => {
                    // The backend paused: what the encoder holds goes out now.
                    if std::mem::take(&mut self.unflushed) {
                        if let Some(out) = self.step(Step::Flush).transpose() {
                            return Poll::Ready(Some(out));
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    let out = self.step(Step::Finish).transpose();
                    self.state = State::Done;
                    return Poll::Ready(out);
                }
                Poll::Ready(Some(Err(e))) => {
                    self.state = State::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let out = match frame.into_data() {
                Ok(data) => {
                    let mut out = self.step(Step::Encode(&data));
                    if self.flush_each {
                        out = out.and_then(|encoded| {
                            let flushed = self.step(Step::Flush)?;
                            Ok(join(encoded, flushed))
                        });
                    } else {
                        self.unflushed = true;
                    }
                    out
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        let out = self.step(Step::Finish);
                        self.state = State::Trailers(trailers);
                        out
                    }
                    Err(_) => continue,
                },
            };
            if let Some(out) = out.transpose() {
                return Poll::Ready(Some(out));
            }
        }
    }

    pub(super) fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

/// Two optional data frames as one.
fn join(a: Option<Frame<Bytes>>, b: Option<Frame<Bytes>>) -> Option<Frame<Bytes>> {
    let data = |f: Option<Frame<Bytes>>| f.and_then(|f| f.into_data().ok());
    match (data(a), data(b)) {
        (Some(a), Some(b)) => {
            let mut both = Vec::with_capacity(a.len() + b.len());
            both.extend_from_slice(&a);
            both.extend_from_slice(&b);
            Some(Frame::data(Bytes::from(both)))
        }
        (a, b) => a.or(b).map(Frame::data),
    }
}

#[cfg(test)]
mod tests;
