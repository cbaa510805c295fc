//! Damaged blocks: truncated or flipped index bytes and chunk segments give typed errors
//! (or, where the damage lies in bytes the reader never uses, the intact answer), never a
//! panic.

use std::path::Path;
use std::sync::Arc;

use super::{
    Answer, Backfilled, Block, BlockCache, BlockError, Damage, backfill, dataset, matcher,
    promtools,
};
use crate::storage::object::FsObjects;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A scratch copy of one block of `b` that a test may damage.
pub(super) fn scratch(b: &Backfilled, ulid: &str) -> (tempfile::TempDir, Arc<FsObjects>) {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&b.dir.join(ulid), &tmp.path().join(ulid));
    let objects = Arc::new(FsObjects::new(tmp.path()));
    (tmp, objects)
}

async fn open_and_select(objects: Arc<FsObjects>, ulid: &str) -> Result<Answer, BlockError> {
    let block = Block::open_dir(
        objects,
        format!("{ulid}/"),
        Arc::new(BlockCache::disabled()),
    )
    .await?;
    let all = [matcher("__name__", "=~", ".+")];
    let got = block.select(&all, i64::MIN / 2, i64::MAX / 2).await?;
    got.iter()
        .map(|s| {
            let samples = s
                .all_samples()
                .map_err(|e| BlockError::corrupt("chunk", 0, e.to_string()))?;
            Ok((s.labels.clone(), samples))
        })
        .collect()
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

#[tokio::test]
async fn damaged_index_and_chunks_give_typed_errors() {
    let d = dataset();
    let Some(bin) = promtools().into_iter().next() else {
        return;
    };
    let b = backfill(&bin, &d);
    let ulid = b.ulids[0].clone();
    let index = |tmp: &tempfile::TempDir| tmp.path().join(&ulid).join("index");
    let segment = |tmp: &tempfile::TempDir| tmp.path().join(&ulid).join("chunks/000001");
    let header = {
        let block = Block::open_dir(
            Arc::new(FsObjects::new(&b.dir)),
            format!("{ulid}/"),
            Arc::new(BlockCache::disabled()),
        )
        .await
        .unwrap();
        block.index_header().clone()
    };
    let toc = *header.toc();
    // A list the select below reads (it does not read the list of all series).
    let m_a_postings = header.postings_range("__name__", "m_a").unwrap().start as usize;
    let is_corrupt = |r: &Result<Answer, BlockError>| matches!(r, Err(BlockError::Corrupt { .. }));

    // Named damage, each with the error it must give.
    let cases: Vec<(&str, Damage)> = vec![
        ("cut to 10 bytes", Box::new(|b| b.truncate(10))),
        ("cut in half", Box::new(|b| b.truncate(b.len() / 2))),
        ("cut by one byte", Box::new(|b| b.truncate(b.len() - 1))),
        ("bad magic", Box::new(|b| b[0] ^= 0xff)),
        (
            "TOC byte",
            Box::new(|b| {
                let n = b.len();
                b[n - 30] ^= 0x01
            }),
        ),
        (
            "symbol byte",
            Box::new(move |b| b[toc.symbols as usize + 10] ^= 0x20),
        ),
        // Series entries start at the next multiple of 16 (padding before).
        (
            "series byte",
            Box::new(move |b| b[toc.series.next_multiple_of(16) as usize + 3] ^= 0x04),
        ),
        (
            "postings byte",
            Box::new(move |b| b[m_a_postings + 9] ^= 0x01),
        ),
        (
            "postings offset table byte",
            Box::new(move |b| b[toc.postings_offset_table as usize + 12] ^= 0x01),
        ),
    ];
    for (what, damage) in &cases {
        let (tmp, objects) = scratch(&b, &ulid);
        edit(&index(&tmp), damage);
        let r = open_and_select(objects, &ulid).await;
        assert!(is_corrupt(&r), "{what}: {:?}", r.map(|s| s.len()));
    }
    let (tmp, objects) = scratch(&b, &ulid);
    edit(&index(&tmp), |b| b[4] = 1);
    let r = open_and_select(objects, &ulid).await;
    assert!(
        matches!(
            r,
            Err(BlockError::UnsupportedVersion {
                what: "index",
                version: 1,
                ..
            })
        ),
        "{:?}",
        r.map(|s| s.len())
    );

    // Chunks: a flipped bit fails the chunk's CRC, a cut segment is found short.
    let (tmp, objects) = scratch(&b, &ulid);
    edit(&segment(&tmp), |b| b[100] ^= 0x10);
    let r = open_and_select(objects, &ulid).await;
    assert!(is_corrupt(&r), "chunk byte: {:?}", r.map(|s| s.len()));
    let (tmp, objects) = scratch(&b, &ulid);
    edit(&segment(&tmp), |b| b.truncate(b.len() / 2));
    let r = open_and_select(objects, &ulid).await;
    assert!(is_corrupt(&r), "cut segment: {:?}", r.map(|s| s.len()));
    let (tmp, objects) = scratch(&b, &ulid);
    std::fs::remove_file(segment(&tmp)).unwrap();
    let r = open_and_select(objects, &ulid).await;
    assert!(is_corrupt(&r), "missing segment: {:?}", r.map(|s| s.len()));
}

#[tokio::test]
async fn any_damage_is_an_error_or_an_answer_never_a_panic() {
    let d = dataset();
    let Some(bin) = promtools().into_iter().next() else {
        return;
    };
    let b = backfill(&bin, &d);
    let ulid = b.ulids[0].clone();
    let (tmp, objects) = scratch(&b, &ulid);
    let path = tmp.path().join(&ulid).join("index");
    let original = std::fs::read(&path).unwrap();
    let intact = open_and_select(objects.clone(), &ulid).await.unwrap();
    let mut errors = 0;
    let mut runs = 0;
    // Every damaged index gives an error or, when the damage lies where the reader does not
    // look (padding, the unused label index sections), the intact answer.
    let mut check = |r: Result<Answer, BlockError>, what: String| {
        runs += 1;
        match r {
            Ok(got) => assert_eq!(got, intact, "{what}"),
            Err(BlockError::Corrupt { .. } | BlockError::UnsupportedVersion { .. }) => errors += 1,
            Err(e) => panic!("{what}: {e:?}"),
        }
    };
    for pos in 0..original.len() {
        for flip in [0x01u8, 0x80] {
            let mut bad = original.clone();
            bad[pos] ^= flip;
            std::fs::write(&path, &bad).unwrap();
            check(
                open_and_select(objects.clone(), &ulid).await,
                format!("byte {pos} ^ {flip:#x}"),
            );
        }
    }
    for len in 0..original.len() {
        std::fs::write(&path, &original[..len]).unwrap();
        check(
            open_and_select(objects.clone(), &ulid).await,
            format!("cut to {len}"),
        );
    }
    eprintln!(
        "{errors} errors in {runs} damaged indexes of {} bytes",
        original.len()
    );
    assert!(
        errors * 2 > runs,
        "{errors} errors in {runs} damaged indexes"
    );
}

#[tokio::test]
async fn chunks_other_than_xor_are_refused_by_name() {
    let d = dataset();
    let Some(bin) = promtools().into_iter().next() else {
        return;
    };
    let b = backfill(&bin, &d);
    let ulid = b.ulids[0].clone();
    let (tmp, objects) = scratch(&b, &ulid);
    let cache = Arc::new(BlockCache::disabled());
    let block = Block::open_dir(objects.clone(), format!("{ulid}/"), cache.clone())
        .await
        .unwrap();
    let (min, max) = (block.meta().min_time, block.meta().max_time);
    let dense = [matcher("__name__", "=", "m_dense")];
    let series = block.matching_series(&dense, min, max).await.unwrap();
    let chunk = series[0].chunks[0];
    // Rewrite the chunk's encoding byte as a native histogram's (2), with a valid CRC.
    edit(&tmp.path().join(&ulid).join("chunks/000001"), |seg| {
        let off = chunk.offset() as usize;
        let mut len = 0usize;
        let mut i = off;
        let mut shift = 0;
        loop {
            len |= usize::from(seg[i] & 0x7f) << shift;
            shift += 7;
            i += 1;
            if seg[i - 1] < 0x80 {
                break;
            }
        }
        seg[i] = 2;
        let crc = crc32c::crc32c(&seg[i..i + 1 + len]);
        seg[i + 1 + len..i + 5 + len].copy_from_slice(&crc.to_be_bytes());
    });
    let r = block.select(&dense, min, max - 1).await;
    match r {
        Err(BlockError::UnsupportedEncoding { series, encoding }) => {
            assert_eq!(encoding, 2);
            assert!(series.contains("m_dense"), "{series}");
        }
        other => panic!("{:?}", other.map(|s| s.len())),
    }
    // Or left out with a warning naming the series.
    let (series, warnings) = block.select_floats(&dense, min, max - 1).await.unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(matches!(
        &warnings[0],
        BlockError::UnsupportedEncoding { encoding: 2, .. }
    ));
    let want: Vec<(i64, f64)> = d
        .series
        .iter()
        .find(|(l, _)| l.iter().any(|(_, v)| v == "m_dense"))
        .unwrap()
        .1
        .iter()
        .copied()
        .filter(|(t, _)| *t > chunk.max_time && *t < max)
        .collect();
    let got: Vec<(i64, f64)> = series
        .iter()
        .flat_map(|s| s.all_samples().unwrap())
        .collect();
    assert!(want.len() > 1000);
    assert_eq!(got, want, "the samples of the other chunks");
    // Other series of the block are still read.
    let m_a = [matcher("__name__", "=", "m_a")];
    assert_eq!(block.select(&m_a, min, max - 1).await.unwrap().len(), 6);
}
