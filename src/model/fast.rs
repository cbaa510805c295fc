//! A direct reader for range answers (`"result"` of a matrix), the bulk of what promgate
//! decodes: label sets and `[timestamp, "value"]` pairs as Prometheus writes them, without
//! serde's generic machinery. Anything it does not expect makes it give up (`None`), and
//! the caller decodes with serde instead, so it never decides what is valid JSON.

use smol_str::SmolStr;

use super::{Labels, Point, Series};

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A JSON string; borrowed when it has no escapes.
    fn string(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'"' => {
                    let raw = &self.b[start..self.i];
                    self.i += 1;
                    return if escaped {
                        let quoted = &self.b[start - 1..self.i];
                        serde_json::from_slice::<String>(quoted)
                            .ok()
                            .map(Into::into)
                    } else {
                        std::str::from_utf8(raw).ok().map(Into::into)
                    };
                }
                b'\\' => {
                    escaped = true;
                    self.i += 2;
                }
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        None
    }

    /// A timestamp in float seconds as milliseconds: `123`, `-1.5`, `1700000000.123`;
    /// anything else (exponents, more than three decimals) is left to serde.
    fn timestamp(&mut self) -> Option<i64> {
        self.ws();
        let negative = self.b.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let mut secs: i64 = 0;
        let start = self.i;
        while let Some(d) = self.b.get(self.i).filter(|c| c.is_ascii_digit()) {
            secs = secs.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        let mut ms: i64 = 0;
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            let mut digits = 0;
            while let Some(d) = self.b.get(self.i).filter(|c| c.is_ascii_digit()) {
                if digits == 3 {
                    return None;
                }
                ms = ms * 10 + i64::from(d - b'0');
                digits += 1;
                self.i += 1;
            }
            if digits == 0 {
                return None;
            }
            ms *= [1, 100, 10, 1][digits];
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            return None;
        }
        let total = secs.checked_mul(1000)?.checked_add(ms)?;
        Some(if negative { -total } else { total })
    }

    fn labels(&mut self) -> Option<Labels> {
        self.eat(b'{')?;
        let mut pairs = Vec::new();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(Labels::new(pairs));
        }
        loop {
            let name = self.string()?.into_owned();
            self.eat(b':')?;
            let value = self.string()?.into_owned();
            pairs.push((name, value));
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        let sorted = pairs.windows(2).all(|w| w[0].0 < w[1].0);
        Some(if sorted {
            Labels(pairs)
        } else {
            Labels::new(pairs)
        })
    }

    fn values(&mut self) -> Option<Vec<Point>> {
        self.eat(b'[')?;
        let mut points = Vec::new();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(points);
        }
        loop {
            self.eat(b'[')?;
            let t = self.timestamp()?;
            self.eat(b',')?;
            let v = SmolStr::new(self.string()?);
            self.eat(b']')?;
            points.push(Point { t, v });
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(points);
                }
                _ => return None,
            }
        }
    }

    fn series(&mut self) -> Option<Series> {
        self.eat(b'{')?;
        let mut metric = None;
        let mut values = Vec::new();
        loop {
            match self.string()?.as_ref() {
                "metric" => {
                    self.eat(b':')?;
                    metric = Some(self.labels()?);
                }
                "values" => {
                    self.eat(b':')?;
                    values = self.values()?;
                }
                // Native histograms and anything new: serde's business.
                _ => return None,
            }
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        Some(Series {
            metric: metric?,
            values,
            histograms: Vec::new(),
        })
    }
}

/// The series of a matrix `result` array, or `None` when it holds anything unexpected.
pub(super) fn matrix(text: &str) -> Option<Vec<Series>> {
    let mut r = Reader {
        b: text.as_bytes(),
        i: 0,
    };
    r.eat(b'[')?;
    let mut out = Vec::new();
    if r.peek()? == b']' {
        r.i += 1;
    } else {
        loop {
            out.push(r.series()?);
            match r.peek()? {
                b',' => r.i += 1,
                b']' => {
                    r.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    r.ws();
    (r.i == r.b.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow(text: &str) -> Vec<Series> {
        serde_json::from_str(text).unwrap()
    }

    fn same(a: &[Series], b: &[Series]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.metric == y.metric && x.values == y.values)
    }

    #[test]
    fn reads_what_serde_reads() {
        for text in [
            r#"[]"#,
            r#"[{"metric":{},"values":[]}]"#,
            r#"[{"metric":{"__name__":"up","job":"a\"b\\c","z":"é\u003c"},"values":[[1700000000,"1"],[1700000000.5,"NaN"],[1700000000.05,"+Inf"],[1700000000.123,"-1e-07"]]},{"values":[[-1.5,"0"]],"metric":{"b":"1","a":"2"}}]"#,
            " [ { \"metric\" : { \"a\" : \"1\" } , \"values\" : [ [ 1 , \"2\" ] ] } ] ",
        ] {
            let fast = matrix(text).unwrap_or_else(|| panic!("gave up on {text}"));
            assert!(same(&fast, &slow(text)), "{text}");
        }
    }

    #[test]
    fn gives_up_on_the_unexpected() {
        for text in [
            r#"[{"metric":{},"values":[[1e3,"1"]]}]"#,
            r#"[{"metric":{},"values":[[1.2345,"1"]]}]"#,
            r#"[{"metric":{},"histograms":[[1,{"count":"1"}]]}]"#,
            r#"[{"metric":{"a":1},"values":[]}]"#,
            r#"[{"metric":{},"values":[]}"#,
            r#"[{"metric":{},"values":[]}] x"#,
            r#"[{"values":[]}]"#,
        ] {
            assert!(matrix(text).is_none(), "{text}");
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let seed = r#"[{"metric":{"a":"b\"c"},"values":[[1.5,"2"],[2,"NaN"]]}]"#.as_bytes();
        for _ in 0..20_000 {
            let mut bytes = seed.to_vec();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % bytes.len();
                bytes[at] = (x >> 32) as u8;
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = matrix(text);
            }
        }
    }
}
