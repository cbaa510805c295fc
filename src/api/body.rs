//! Response bodies: an answer's bytes in one piece, or in the pieces they were written in.
//! A big engine answer is written on several threads, each into its own buffer; sending
//! those buffers one after the other spares copying them into one (and touching that much
//! fresh memory again).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// A body whose bytes are all known: sent as its pieces, in order, with its exact length.
#[derive(Debug, Default)]
pub struct Body {
    pieces: VecDeque<Bytes>,
    remaining: u64,
}

impl Body {
    /// The pieces, to be sent in this order; empty ones are dropped.
    pub fn from_pieces(pieces: impl IntoIterator<Item = Bytes>) -> Body {
        let pieces: VecDeque<Bytes> = pieces.into_iter().filter(|p| !p.is_empty()).collect();
        let remaining = pieces.iter().map(|p| p.len() as u64).sum();
        Body { pieces, remaining }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body::from_pieces([bytes])
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::from(Bytes::from(bytes))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::from(Bytes::from(text))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let body = self.get_mut();
        Poll::Ready(body.pieces.pop_front().map(|piece| {
            body.remaining -= piece.len() as u64;
            Ok(Frame::data(piece))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn pieces_arrive_in_order_with_the_exact_length() {
        let body = Body::from_pieces([
            Bytes::from_static(b"{\"a\":"),
            Bytes::new(),
            Bytes::from_static(b"[1,2]"),
            Bytes::from_static(b"}"),
        ]);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(11));
        assert!(!http_body::Body::is_end_stream(&body));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{\"a\":[1,2]}");
    }

    #[tokio::test]
    async fn an_empty_body_ends_at_once() {
        let body = Body::from(Vec::new());
        assert!(http_body::Body::is_end_stream(&body));
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(0));
        assert!(body.collect().await.unwrap().to_bytes().is_empty());
    }
}
