//! The data of the Prometheus HTTP API as promgate handles it between backends and clients:
//! label sets, query results, and the envelope every answer comes in. Values stay in the
//! text form the backend wrote (`"0.1"`, `"NaN"`, `"+Inf"`), so relaying never reformats a
//! number; timestamps are milliseconds.

use std::cmp::Ordering;
use std::fmt;

use serde::Deserialize;
mod fast;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A label set, sorted by name, as Prometheus keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    pub fn new(mut pairs: Vec<(String, String)>) -> Self {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|a, b| a.0 == b.0);
        Labels(pairs)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `name` unless the set already has it: series labels win over external labels,
    /// as in Prometheus's own handling of external labels.
    pub fn set_if_absent(&mut self, name: &str, value: &str) {
        if let Err(i) = self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            self.0.insert(i, (name.to_string(), value.to_string()));
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            self.0.remove(i);
        }
    }

    /// Label names to remove (replica labels) and external labels to add.
    pub fn adjust(&mut self, remove: &[String], add: &[(String, String)]) {
        for name in remove {
            self.remove(name);
        }
        for (name, value) in add {
            self.set_if_absent(name, value);
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Prometheus's order of label sets: pair by pair, name then value; a prefix sorts first.
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            match a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LabelsVisitor;
        impl<'de> Visitor<'de> for LabelsVisitor {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a label set object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    pairs.push((k, v));
                }
                if pairs.windows(2).all(|w| w[0].0 < w[1].0) {
                    Ok(Labels(pairs))
                } else {
                    Ok(Labels::new(pairs))
                }
            }
        }
        d.deserialize_map(LabelsVisitor)
    }
}

/// A timestamp as the API writes it (float seconds), kept in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let secs = f64::deserialize(d)?;
        Ok(Millis((secs * 1000.0).round() as i64))
    }
}

/// `[timestamp, "value"]`. The value's text is short (it stays inline: no allocation per
/// point when a large range answer is decoded).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub t: i64,
    pub v: smol_str::SmolStr,
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (t, v): (Millis, smol_str::SmolStr) = Deserialize::deserialize(d)?;
        Ok(Point { t: t.0, v })
    }
}

/// `[timestamp, {native histogram}]`, relayed as it came.
#[derive(Debug, Clone)]
pub struct HistogramPoint {
    pub t: i64,
    pub h: Box<RawValue>,
}

impl<'de> Deserialize<'de> for HistogramPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (t, h): (Millis, Box<RawValue>) = Deserialize::deserialize(d)?;
        Ok(HistogramPoint { t: t.0, h })
    }
}

/// One element of an instant vector.
#[derive(Debug, Clone, Deserialize)]
pub struct VectorSample {
    pub metric: Labels,
    #[serde(default)]
    pub value: Option<Point>,
    #[serde(default)]
    pub histogram: Option<HistogramPoint>,
}

/// One series of a range result.
#[derive(Debug, Clone, Deserialize)]
pub struct Series {
    pub metric: Labels,
    #[serde(default)]
    pub values: Vec<Point>,
    #[serde(default)]
    pub histograms: Vec<HistogramPoint>,
}

/// `data` of a query answer.
#[derive(Debug, Clone)]
pub enum QueryResult {
    Vector(Vec<VectorSample>),
    Matrix(Vec<Series>),
    Scalar(Point),
    String(Point),
}

impl QueryResult {
    pub fn type_name(&self) -> &'static str {
        match self {
            QueryResult::Vector(_) => "vector",
            QueryResult::Matrix(_) => "matrix",
            QueryResult::Scalar(_) => "scalar",
            QueryResult::String(_) => "string",
        }
    }
}

impl<'de> Deserialize<'de> for QueryResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw<'a> {
            #[serde(rename = "resultType")]
            result_type: String,
            #[serde(borrow)]
            result: &'a RawValue,
        }
        let raw = Raw::deserialize(d)?;
        let text = raw.result.get();
        let parsed = match raw.result_type.as_str() {
            "vector" => serde_json::from_str(text).map(QueryResult::Vector),
            "matrix" => match fast::matrix(text) {
                Some(series) => Ok(QueryResult::Matrix(series)),
                None => serde_json::from_str(text).map(QueryResult::Matrix),
            },
            "scalar" => serde_json::from_str(text).map(QueryResult::Scalar),
            "string" => serde_json::from_str(text).map(QueryResult::String),
            other => return Err(de::Error::custom(format!("unknown resultType {other:?}"))),
        };
        parsed.map_err(de::Error::custom)
    }
}

/// The envelope of every API answer.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub status: String,
    #[serde(default = "Option::default")]
    pub data: Option<T>,
    #[serde(default, rename = "errorType")]
    pub error_type: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub warnings: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub infos: Vec<String>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// `/api/v1/metadata` entries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MetricMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// `/api/v1/query_exemplars` elements.
#[derive(Debug, Clone, Deserialize)]
pub struct ExemplarSeries {
    #[serde(rename = "seriesLabels")]
    pub series_labels: Labels,
    pub exemplars: Vec<Exemplar>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: String,
    pub timestamp: Millis,
}

/// Lists of strings arrive as JSON arrays; a `null` list is empty.
pub fn strings_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of strings or null")
        }
        fn visit_unit<E>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }
        fn visit_none<E>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sort_like_prometheus() {
        let a = Labels::new(vec![
            ("__name__".into(), "up".into()),
            ("job".into(), "a".into()),
        ]);
        let b = Labels::new(vec![
            ("__name__".into(), "up".into()),
            ("instance".into(), "x".into()),
            ("job".into(), "a".into()),
        ]);
        assert!(b < a, "instance sorts before job");
        let prefix = Labels::new(vec![("__name__".into(), "up".into())]);
        assert!(prefix < a);
    }

    #[test]
    fn external_labels_do_not_override_series_labels() {
        let mut l = Labels::new(vec![("cluster".into(), "own".into())]);
        l.adjust(
            &["replica".to_string()],
            &[("cluster".into(), "eu1".into()), ("dc".into(), "x".into())],
        );
        assert_eq!(l.get("cluster"), Some("own"));
        assert_eq!(l.get("dc"), Some("x"));
    }

    #[test]
    fn query_results_parse_all_types() {
        let v: Envelope<QueryResult> = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"b":"2","a":"1"},"value":[1700000000.5,"1"]}]},"warnings":["w"]}"#,
        )
        .unwrap();
        let QueryResult::Vector(v2) = v.data.unwrap() else {
            panic!("not a vector")
        };
        assert_eq!(v2[0].metric.iter().next(), Some(("a", "1")));
        assert_eq!(v2[0].value.as_ref().unwrap().t, 1_700_000_000_500);
        assert_eq!(v.warnings, vec!["w"]);
        let m: Envelope<QueryResult> = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"NaN"],[2.001,"+Inf"]]}],"stats":{"x":1}}}"#,
        )
        .unwrap();
        let QueryResult::Matrix(m) = m.data.unwrap() else {
            panic!("not a matrix")
        };
        assert_eq!(m[0].values[1].t, 2001);
        assert_eq!(m[0].values[1].v, "+Inf");
        let s: Envelope<QueryResult> = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#,
        )
        .unwrap();
        assert!(matches!(s.data.unwrap(), QueryResult::Scalar(p) if p.v == "3"));
    }
}
