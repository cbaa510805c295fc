//! Whatever a bucket holds as a block's index and chunks, opening the block and reading it
//! gives series or a typed error, never a panic or a runaway allocation.
//!
//! Input: a 4-byte little-endian length, that many bytes of index (fewer if the input is
//! shorter), and the rest as the block's one chunk segment. meta.json is fixed.

#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use promgate::storage::object::{MemoryObjects, ObjectStore};
use promgate::storage::tsdb::{Block, BlockCache, BlockMeta};
use promql_parser::label::{MatchOp, Matcher};

const ULID: &str = "01JC2Z8X3W5Q7R9T1V3X5Z7B9D";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fn matchers() -> Vec<Vec<Matcher>> {
    let re = |v: &str| regex::Regex::new(&format!("^(?:{v})$")).expect("regex");
    vec![
        vec![Matcher::new(MatchOp::Re(re(".+")), "__name__", ".+")],
        vec![
            Matcher::new(MatchOp::Equal, "job", "a"),
            Matcher::new(MatchOp::NotEqual, "instance", ""),
        ],
        vec![Matcher::new(MatchOp::NotRe(re("x|y")), "le", "x|y")],
        vec![],
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let split = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (index, chunks) = rest.split_at(split);
    let meta = format!(
        r#"{{"ulid":"{ULID}","minTime":0,"maxTime":4000000000000,"version":1,
            "stats":{{"numSeries":1}},"compaction":{{"level":1,"sources":["{ULID}"]}}}}"#
    );
    runtime().block_on(async {
        let objects = Arc::new(MemoryObjects::new());
        for (key, bytes) in [
            ("meta.json", meta.into_bytes()),
            ("index", index.to_vec()),
            ("chunks/000001", chunks.to_vec()),
        ] {
            objects
                .put(&format!("{ULID}/{key}"), Bytes::from(bytes))
                .await
                .expect("memory put");
        }
        let Ok(meta) = BlockMeta::parse(&objects.get(&format!("{ULID}/meta.json")).await.expect("meta"))
        else {
            return;
        };
        let cache = Arc::new(BlockCache::new(1 << 20));
        let Ok(block) = Block::open(objects, format!("{ULID}/"), meta, cache).await else {
            return;
        };
        for m in matchers() {
            let _ = block.select(&m, i64::MIN / 2, i64::MAX / 2).await;
            let _ = block.list(&m, 0, 1_000_000).await;
            let _ = block.label_names(&m, 0, i64::MAX / 2).await;
            let _ = block.label_values("job", &m, 0, i64::MAX / 2).await;
        }
    });
});
