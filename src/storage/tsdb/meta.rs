//! A block's `meta.json`: its ULID, time range, statistics, compaction level and, for blocks
//! uploaded by Thanos, the external labels and downsampling resolution it recorded.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::BlockError;

/// What `meta.json` says about a block. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMeta {
    pub ulid: String,
    /// First millisecond covered (inclusive).
    pub min_time: i64,
    /// End of the covered range, exclusive as in Prometheus: samples have `t < max_time`.
    pub max_time: i64,
    pub stats: BlockStats,
    /// 1 for blocks cut from the head or backfilled, higher after compaction.
    pub compaction_level: u32,
    /// The meta.json format version (1).
    pub version: u32,
    /// Thanos's external labels for the block (empty when absent).
    pub thanos_labels: BTreeMap<String, String>,
    /// Thanos's downsampling resolution in ms (0 for raw data), when present.
    pub downsample_resolution: Option<i64>,
}

/// Counts the block was written with (absent ones are 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockStats {
    pub num_series: u64,
    pub num_samples: u64,
    pub num_chunks: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMeta {
    ulid: String,
    min_time: i64,
    max_time: i64,
    #[serde(default)]
    stats: RawStats,
    #[serde(default)]
    compaction: RawCompaction,
    version: u32,
    #[serde(default)]
    thanos: Option<RawThanos>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawStats {
    #[serde(default)]
    num_series: u64,
    #[serde(default)]
    num_samples: u64,
    #[serde(default)]
    num_chunks: u64,
}

#[derive(Deserialize, Default)]
struct RawCompaction {
    #[serde(default)]
    level: u32,
}

#[derive(Deserialize)]
struct RawThanos {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    downsample: Option<RawDownsample>,
}

#[derive(Deserialize)]
struct RawDownsample {
    resolution: i64,
}

impl BlockMeta {
    /// Parses the bytes of a `meta.json`.
    pub fn parse(bytes: &[u8]) -> Result<BlockMeta, BlockError> {
        let raw: RawMeta =
            serde_json::from_slice(bytes).map_err(|e| BlockError::Meta(e.to_string()))?;
        if raw.ulid.is_empty() {
            return Err(BlockError::Meta("empty ulid".to_string()));
        }
        if raw.max_time < raw.min_time {
            return Err(BlockError::Meta(format!(
                "maxTime {} before minTime {}",
                raw.max_time, raw.min_time
            )));
        }
        let (thanos_labels, downsample_resolution) = match raw.thanos {
            Some(t) => (
                t.labels.unwrap_or_default(),
                t.downsample.map(|d| d.resolution),
            ),
            None => (BTreeMap::new(), None),
        };
        Ok(BlockMeta {
            ulid: raw.ulid,
            min_time: raw.min_time,
            max_time: raw.max_time,
            stats: BlockStats {
                num_series: raw.stats.num_series,
                num_samples: raw.stats.num_samples,
                num_chunks: raw.stats.num_chunks,
            },
            compaction_level: raw.compaction.level,
            version: raw.version,
            thanos_labels,
            downsample_resolution,
        })
    }

    /// Whether the block may hold samples with `start_ms <= t <= end_ms`.
    pub fn overlaps(&self, start_ms: i64, end_ms: i64) -> bool {
        start_ms < self.max_time && end_ms >= self.min_time
    }
}

/// Whether `name` is a ULID as Prometheus writes them: 26 characters of Crockford's
/// base32 in upper case, the first at most `7` (128 bits).
pub fn is_ulid(name: &str) -> bool {
    name.len() == 26
        && name.as_bytes()[0] <= b'7'
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_are_told_from_other_directory_names() {
        assert!(is_ulid("01JC2Z8X3W5Q7R9T1V3X5Z7B9D"));
        assert!(is_ulid("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
        assert!(!is_ulid("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
        assert!(!is_ulid("01JC2Z8X3W5Q7R9T1V3X5Z7B9"));
        assert!(!is_ulid("01JC2Z8X3W5Q7R9T1V3X5Z7B9DX"));
        assert!(!is_ulid("01jc2z8x3w5q7r9t1v3x5z7b9d"));
        assert!(!is_ulid("01JC2Z8X3W5Q7R9T1V3X5Z7B9I"));
        assert!(!is_ulid("01JC2Z8X3W5Q7R9T1V3X5Z7B9D.tmp-for-creation"));
        assert!(!is_ulid("chunks_head"));
    }

    #[test]
    fn parses_prometheus_and_thanos_metas() {
        let prom = br#"{"ulid":"01JC0000000000000000000000","minTime":1000,"maxTime":7201000,
            "stats":{"numSamples":480,"numSeries":2,"numChunks":4},
            "compaction":{"level":1,"sources":["01JC0000000000000000000000"]},"version":1}"#;
        let m = BlockMeta::parse(prom).unwrap();
        assert_eq!(m.ulid, "01JC0000000000000000000000");
        assert_eq!((m.min_time, m.max_time), (1000, 7201000));
        assert_eq!(m.stats.num_series, 2);
        assert_eq!(m.stats.num_samples, 480);
        assert_eq!(m.stats.num_chunks, 4);
        assert_eq!(m.compaction_level, 1);
        assert_eq!(m.version, 1);
        assert!(m.thanos_labels.is_empty());
        assert_eq!(m.downsample_resolution, None);
        assert!(m.overlaps(0, 1000));
        assert!(!m.overlaps(7201000, 8000000));

        let thanos = br#"{"ulid":"01X","minTime":0,"maxTime":10,"version":1,
            "compaction":{"level":3},"future":{"x":1},
            "thanos":{"labels":{"replica":"a","cluster":"eu"},"downsample":{"resolution":300000},
                "source":"compactor","segment_files":["000001"]}}"#;
        let m = BlockMeta::parse(thanos).unwrap();
        assert_eq!(
            m.thanos_labels.get("cluster").map(String::as_str),
            Some("eu")
        );
        assert_eq!(m.thanos_labels.len(), 2);
        assert_eq!(m.downsample_resolution, Some(300000));
        assert_eq!(m.stats, BlockStats::default());
    }

    #[test]
    fn bad_meta_is_a_typed_error() {
        for bad in [
            &b"not json"[..],
            br#"{"ulid":"x","minTime":0}"#,
            br#"{"ulid":"x","minTime":"a","maxTime":1,"version":1}"#,
            br#"{"ulid":"","minTime":0,"maxTime":1,"version":1}"#,
            br#"{"ulid":"x","minTime":5,"maxTime":1,"version":1}"#,
            b"",
        ] {
            assert!(matches!(BlockMeta::parse(bad), Err(BlockError::Meta(_))));
        }
    }
}
