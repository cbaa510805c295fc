//! Prometheus's JSON, written by hand: the same field order, the same string escaping (Go's
//! encoder, which also escapes `<`, `>` and `&`), timestamps as float seconds and values as
//! strings. Writing directly into one buffer keeps large range answers cheap.

use crate::error::ApiError;
use crate::model::{HistogramPoint, Labels, Point, QueryResult, Series, VectorSample};
use crate::time::write_timestamp;

/// Writes `s` as a JSON string the way Go's encoding/json does.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            '<' => Some(b"\\u003c"),
            '>' => Some(b"\\u003e"),
            '&' => Some(b"\\u0026"),
            '\u{2028}' => Some(b"\\u2028"),
            '\u{2029}' => Some(b"\\u2029"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
        }
        start = i + c.len_utf8();
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `[a,b,...]`, each item written by `write`.
pub fn write_array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

pub fn write_labels(out: &mut Vec<u8>, labels: &Labels) {
    out.push(b'{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_str(out, value);
    }
    out.push(b'}');
}

pub fn write_strings(out: &mut Vec<u8>, items: &[String]) {
    write_array(out, items, |out, s| write_str(out, s));
}

fn write_point(out: &mut Vec<u8>, p: &Point) {
    out.push(b'[');
    write_timestamp(out, p.t);
    out.push(b',');
    write_str(out, &p.v);
    out.push(b']');
}

fn write_vector_sample(out: &mut Vec<u8>, s: &VectorSample) {
    out.extend_from_slice(b"{\"metric\":");
    write_labels(out, &s.metric);
    if let Some(p) = &s.value {
        out.extend_from_slice(b",\"value\":");
        write_point(out, p);
    }
    if let Some(h) = &s.histogram {
        out.extend_from_slice(b",\"histogram\":");
        write_histogram_point(out, h);
    }
    out.push(b'}');
}

/// `[timestamp, {native histogram}]`, the histogram relayed as it came.
fn write_histogram_point(out: &mut Vec<u8>, h: &HistogramPoint) {
    out.push(b'[');
    write_timestamp(out, h.t);
    out.push(b',');
    out.extend_from_slice(h.h.get().as_bytes());
    out.push(b']');
}

fn write_series(out: &mut Vec<u8>, s: &Series) {
    out.extend_from_slice(b"{\"metric\":");
    write_labels(out, &s.metric);
    if !s.values.is_empty() {
        out.extend_from_slice(b",\"values\":");
        write_array(out, &s.values, write_point);
    }
    if !s.histograms.is_empty() {
        out.extend_from_slice(b",\"histograms\":");
        write_array(out, &s.histograms, write_histogram_point);
    }
    out.push(b'}');
}

/// `{"resultType":...,"result":...}`.
pub fn write_query_result(out: &mut Vec<u8>, result: &QueryResult) {
    out.extend_from_slice(b"{\"resultType\":\"");
    out.extend_from_slice(result.type_name().as_bytes());
    out.extend_from_slice(b"\",\"result\":");
    match result {
        QueryResult::Vector(samples) => write_array(out, samples, write_vector_sample),
        QueryResult::Matrix(series) => write_array(out, series, write_series),
        QueryResult::Scalar(p) | QueryResult::String(p) => write_point(out, p),
    }
    out.push(b'}');
}

/// A success answer: `data` is written by the closure.
pub fn success(warnings: &[String], infos: &[String], data: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    success_in_pieces(warnings, infos, |out| data(&mut out.open)).into_vec()
}

/// A success answer whose `data` the closure may write partly in pieces of its own.
pub fn success_in_pieces(
    warnings: &[String],
    infos: &[String],
    data: impl FnOnce(&mut Pieces),
) -> Pieces {
    let mut out = Pieces::default();
    out.open.reserve(256);
    out.open
        .extend_from_slice(b"{\"status\":\"success\",\"data\":");
    data(&mut out);
    write_annotations(&mut out.open, warnings, infos);
    out.open.push(b'}');
    out
}

/// JSON written in pieces, to be sent one after the other: bytes are appended to `open`, and
/// a piece written apart (on another thread) goes after them whole rather than copied.
#[derive(Debug, Default)]
pub struct Pieces {
    done: Vec<Vec<u8>>,
    /// The piece being written.
    pub open: Vec<u8>,
}

impl From<Vec<u8>> for Pieces {
    /// Pieces that go on from `written`.
    fn from(written: Vec<u8>) -> Pieces {
        Pieces {
            done: Vec::new(),
            open: written,
        }
    }
}

impl Pieces {
    /// How many pieces there are (the one being written counts if it holds anything).
    pub fn len(&self) -> usize {
        self.done.len() + usize::from(!self.open.is_empty())
    }

    /// How many bytes there are in all.
    pub fn byte_len(&self) -> usize {
        self.done.iter().map(Vec::len).sum::<usize>() + self.open.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts `piece` after everything written so far; writing goes on in a new piece.
    pub fn add(&mut self, piece: Vec<u8>) {
        if piece.is_empty() {
            return;
        }
        if !self.open.is_empty() {
            self.done.push(std::mem::take(&mut self.open));
        }
        self.done.push(piece);
    }

    /// The pieces in order.
    pub fn into_body(mut self) -> super::body::Body {
        self.done.push(self.open);
        super::body::Body::from_pieces(self.done.into_iter().map(bytes::Bytes::from))
    }

    /// All of it in one buffer (copied together only if it was written in several pieces).
    pub fn into_vec(self) -> Vec<u8> {
        if self.done.is_empty() {
            return self.open;
        }
        let mut out = Vec::with_capacity(self.byte_len());
        for piece in self.done.iter().chain([&self.open]) {
            out.extend_from_slice(piece);
        }
        out
    }
}

fn write_annotations(out: &mut Vec<u8>, warnings: &[String], infos: &[String]) {
    if !warnings.is_empty() {
        out.extend_from_slice(b",\"warnings\":");
        write_strings(out, warnings);
    }
    if !infos.is_empty() {
        out.extend_from_slice(b",\"infos\":");
        write_strings(out, infos);
    }
}

/// An error answer.
pub fn error(err: &ApiError) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"status\":\"error\",\"errorType\":\"");
    out.extend_from_slice(err.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"error\":");
    write_str(&mut out, &err.message);
    write_annotations(&mut out, &err.warnings, &[]);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Envelope;

    #[tokio::test]
    async fn pieces_keep_their_order_in_one_buffer_and_in_a_body() {
        let answer = success_in_pieces(&["w".to_string()], &[], |out| {
            out.open.extend_from_slice(b"[1");
            out.add(b",2".to_vec());
            out.add(Vec::new());
            out.add(b",3".to_vec());
            out.open.extend_from_slice(b"]");
        });
        assert_eq!(answer.len(), 4);
        let want = br#"{"status":"success","data":[1,2,3],"warnings":["w"]}"#;
        assert_eq!(answer.byte_len(), want.len());
        let sent = http_body_util::BodyExt::collect(answer.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&sent[..], want);
        let answer = success_in_pieces(&[], &[], |out| out.add(b"[]".to_vec()));
        assert_eq!(answer.into_vec(), br#"{"status":"success","data":[]}"#);
    }

    #[test]
    fn strings_are_escaped_like_go() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\n<x>&\u{1}é\u{2028}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"b\\c\n\u003cx\u003e\u0026\u0001é\u2028""#
        );
    }

    #[test]
    fn query_results_round_trip_byte_for_byte() {
        for text in [
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000000.5,"1"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"NaN"],[2.001,"+Inf"]]}]},"warnings":["w"]}"#,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1e+06"]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[]},"infos":["i"]}"#,
        ] {
            let env: Envelope<QueryResult> = serde_json::from_str(text).unwrap();
            let out = success(&env.warnings, &env.infos, |out| {
                write_query_result(out, env.data.as_ref().unwrap())
            });
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    #[test]
    fn errors_carry_type_and_message() {
        let out = error(&ApiError::bad_data("invalid parameter \"query\": x"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": x"}"#
        );
    }
}

/// Adds `labels` (sorted by name) to every series' `"metric":{...}` object of a query answer
/// as a backend wrote it, where the series lacks them, copying everything else byte for byte.
/// `None` when the answer is not shaped as Prometheus writes it; decode it then.
///
/// The pattern `"metric":{` cannot occur inside a JSON string (its quotes would be escaped),
/// so every occurrence starts a label set.
pub fn attach_labels_raw(body: &[u8], labels: &[(String, String)]) -> Option<Vec<u8>> {
    const PATTERN: &[u8] = b"\"metric\":{";
    let finder = memchr::memmem::Finder::new(PATTERN);
    let mut out = Vec::with_capacity(body.len() + body.len() / 8);
    let mut copied = 0;
    let mut pairs: Vec<(usize, usize, String)> = Vec::new();
    for found in finder.find_iter(body) {
        if found < copied {
            return None;
        }
        let open = found + PATTERN.len();
        out.extend_from_slice(&body[copied..open]);
        // The label set: "name":"value" pairs up to the closing brace.
        pairs.clear();
        let mut i = open;
        loop {
            match *body.get(i)? {
                b'}' => break,
                b',' if !pairs.is_empty() => i += 1,
                b'"' => {
                    let start = i;
                    let (name, after_name) = json_string(body, i)?;
                    if *body.get(after_name)? != b':' {
                        return None;
                    }
                    let (_, after_value) = json_string(body, after_name + 1)?;
                    pairs.push((start, after_value, name));
                    i = after_value;
                }
                _ => return None,
            }
        }
        let mut first = true;
        let mut comma = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        let mut extra = labels
            .iter()
            .filter(|(n, _)| !pairs.iter().any(|(_, _, p)| p == n))
            .peekable();
        for (start, end, name) in &pairs {
            while let Some((n, v)) = extra.next_if(|(n, _)| n.as_str() < name.as_str()) {
                comma(&mut out);
                write_str(&mut out, n);
                out.push(b':');
                write_str(&mut out, v);
            }
            comma(&mut out);
            out.extend_from_slice(&body[*start..*end]);
        }
        for (n, v) in extra {
            comma(&mut out);
            write_str(&mut out, n);
            out.push(b':');
            write_str(&mut out, v);
        }
        copied = i;
    }
    out.extend_from_slice(&body[copied..]);
    Some(out)
}

/// The JSON string starting at `at` (its opening quote): its decoded text and the index just
/// past its closing quote.
fn json_string(body: &[u8], at: usize) -> Option<(String, usize)> {
    if *body.get(at)? != b'"' {
        return None;
    }
    let mut i = at + 1;
    let mut escaped = false;
    while i < body.len() {
        match body[i] {
            b'\\' => {
                escaped = true;
                i += 2;
            }
            b'"' => {
                let raw = &body[at..=i];
                let text = if escaped {
                    serde_json::from_slice::<String>(raw).ok()?
                } else {
                    std::str::from_utf8(&raw[1..raw.len() - 1])
                        .ok()?
                        .to_string()
                };
                return Some((text, i + 1));
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod attach_tests {
    use super::*;

    fn attach(body: &str) -> Option<String> {
        let labels = vec![
            ("cluster".to_string(), "eu1".to_string()),
            ("zone".to_string(), "a<b".to_string()),
        ];
        attach_labels_raw(body.as_bytes(), &labels).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn labels_are_inserted_in_name_order_where_absent() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1,"1"]},{"metric":{},"value":[1,"2"]},{"metric":{"cluster":"own"},"value":[1,"3"]}]},"warnings":["w \"metric\":{x}"]}"#;
        assert_eq!(
            attach(body).unwrap(),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","cluster":"eu1","job":"a\"b","zone":"a\u003cb"},"value":[1,"1"]},{"metric":{"cluster":"eu1","zone":"a\u003cb"},"value":[1,"2"]},{"metric":{"cluster":"own","zone":"a\u003cb"},"value":[1,"3"]}]},"warnings":["w \"metric\":{x}"]}"#
        );
    }

    #[test]
    fn matrices_get_labels_like_a_decoded_answer_would() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"1"],[2,"2"]]},{"metric":{"zz":"9"},"values":[[1,"1"]]}]}}"#;
        let fast = attach(body).unwrap();
        let env: crate::model::Envelope<QueryResult> = serde_json::from_str(body).unwrap();
        let mut result = env.data.unwrap();
        if let QueryResult::Matrix(m) = &mut result {
            for s in m {
                s.metric.adjust(
                    &[],
                    &[
                        ("cluster".into(), "eu1".into()),
                        ("zone".into(), "a<b".into()),
                    ],
                );
            }
        }
        let slow = success(&[], &[], |out| write_query_result(out, &result));
        assert_eq!(fast, String::from_utf8(slow).unwrap());
    }

    #[test]
    fn malformed_label_sets_are_refused() {
        assert!(attach(r#"{"metric":{"a":1}}"#).is_none());
        assert!(attach(r#"{"metric":{"a":"1""#).is_none());
        assert!(attach(r#"{"metric":{,"a":"1"}}"#).is_none());
    }
}
