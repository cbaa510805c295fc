//! The index's sections decoded from hand-built bytes: postings lists, the table of
//! contents, symbol tables and series entries, intact and damaged.

use crate::storage::tsdb::BlockError;
use crate::storage::tsdb::decode::{put_uvarint, put_varint};
use crate::storage::tsdb::index::{
    IndexHeader, Toc, decode_postings, parse_symbols, series_entry_len,
};

fn with_crc(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
    out
}

fn postings(refs: &[u32]) -> Vec<u8> {
    let mut body = (refs.len() as u32).to_be_bytes().to_vec();
    for r in refs {
        body.extend_from_slice(&r.to_be_bytes());
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(with_crc(&body));
    out
}

#[test]
fn postings_lists_are_checked() {
    let good = postings(&[3, 5, 9]);
    assert_eq!(
        decode_postings(&good, "i", 0).unwrap(),
        (good.len(), vec![3, 5, 9])
    );
    // Padding after the list is not part of it.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0, 0, 0]);
    assert_eq!(decode_postings(&padded, "i", 0).unwrap().0, good.len());
    let corrupt = |b: &[u8]| {
        matches!(
            decode_postings(b, "i", 100),
            Err(BlockError::Corrupt { .. })
        )
    };
    let mut bad_crc = good.clone();
    bad_crc[9] ^= 1;
    assert!(corrupt(&bad_crc));
    assert!(corrupt(&good[..good.len() - 1]));
    assert!(corrupt(&postings(&[5, 3])));
    assert!(corrupt(&postings(&[5, 5])));
    // A count that disagrees with the length, under a valid CRC.
    let mut body = 7u32.to_be_bytes().to_vec();
    body.extend_from_slice(&1u32.to_be_bytes());
    let mut lying = (body.len() as u32).to_be_bytes().to_vec();
    lying.extend(with_crc(&body));
    assert!(corrupt(&lying));
    // A length of 4 GiB in a few bytes: an error, not an allocation.
    assert!(corrupt(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]));
    assert!(corrupt(&[0, 0, 0, 0, 0, 0, 0, 0]));
    assert!(corrupt(&[]));
}

#[test]
fn toc_is_checked() {
    let offsets = [5u64, 48, 0, 0, 200, 300];
    let mut b = Vec::new();
    for o in offsets {
        b.extend_from_slice(&o.to_be_bytes());
    }
    let b = with_crc(&b);
    let toc = Toc::parse(&b, "i", 1000).unwrap();
    assert_eq!(
        (toc.symbols, toc.series, toc.postings_offset_table),
        (5, 48, 300)
    );
    let mut bad = b.clone();
    bad[3] ^= 1;
    assert!(matches!(
        Toc::parse(&bad, "i", 1000),
        Err(BlockError::Corrupt { .. })
    ));
    // Offsets past the table of contents.
    assert!(matches!(
        Toc::parse(&b, "i", 320),
        Err(BlockError::Corrupt { .. })
    ));
    assert!(Toc::parse(&b[..51], "i", 1000).is_err());
}

#[test]
fn symbol_tables_are_checked() {
    let table = |syms: &[&str], count: u32| {
        let mut body = count.to_be_bytes().to_vec();
        for s in syms {
            put_uvarint(&mut body, s.len() as u64);
            body.extend_from_slice(s.as_bytes());
        }
        with_crc(&body)
    };
    let syms = parse_symbols(&table(&["a", "b", "c"], 3), "i", 0).unwrap();
    assert_eq!(syms.len(), 3);
    assert!(parse_symbols(&table(&["b", "a"], 2), "i", 0).is_err());
    assert!(parse_symbols(&table(&["a"], u32::MAX), "i", 0).is_err());
    let mut bad = table(&["a", "b"], 2);
    bad[5] ^= 1;
    assert!(parse_symbols(&bad, "i", 0).is_err());
    assert!(parse_symbols(&[], "i", 0).is_err());
}

fn entry(label_refs: &[(u64, u64)], chunks: &[(i64, i64, u64)]) -> Vec<u8> {
    let mut body = Vec::new();
    put_uvarint(&mut body, label_refs.len() as u64);
    for (n, v) in label_refs {
        put_uvarint(&mut body, *n);
        put_uvarint(&mut body, *v);
    }
    put_uvarint(&mut body, chunks.len() as u64);
    let (mut prev_maxt, mut prev_ref) = (0i64, 0u64);
    for (i, &(mint, maxt, r)) in chunks.iter().enumerate() {
        if i == 0 {
            put_varint(&mut body, mint);
            put_uvarint(&mut body, (maxt - mint) as u64);
            put_uvarint(&mut body, r);
        } else {
            put_uvarint(&mut body, (mint - prev_maxt) as u64);
            put_uvarint(&mut body, (maxt - mint) as u64);
            put_varint(&mut body, r as i64 - prev_ref as i64);
        }
        prev_maxt = maxt;
        prev_ref = r;
    }
    let mut out = Vec::new();
    put_uvarint(&mut out, body.len() as u64);
    out.extend(with_crc(&body));
    out
}

#[test]
fn series_entries_decode_deltas_and_check_references() {
    let h = IndexHeader::with_symbols(&["__name__", "job", "m", "x"]);
    let chunks = [
        (-1000, 5000, 8u64),
        (5015, 9000, 200),
        (9015, 9015, (1 << 32) | 8),
    ];
    let b = entry(&[(0, 2), (1, 3)], &chunks);
    let s = h.decode_series(4, &b).unwrap();
    assert_eq!(s.series_ref, 4);
    assert_eq!(
        s.labels,
        vec![("__name__".into(), "m".into()), ("job".into(), "x".into())]
    );
    let got: Vec<(i64, i64, u64)> = s
        .chunks
        .iter()
        .map(|c| (c.min_time, c.max_time, c.r#ref))
        .collect();
    assert_eq!(got, chunks);
    assert_eq!(series_entry_len(&b).unwrap(), b.len() as u64);

    let corrupt = |b: &[u8]| matches!(h.decode_series(4, b), Err(BlockError::Corrupt { .. }));
    assert!(corrupt(&entry(&[(0, 9)], &[])), "symbol past the table");
    assert!(corrupt(&b[..b.len() - 2]), "cut short");
    let mut bad = b.clone();
    bad[3] ^= 0x10;
    assert!(corrupt(&bad), "CRC");
    // Counts far beyond the bytes: errors, not allocations.
    let mut body = Vec::new();
    put_uvarint(&mut body, u64::MAX >> 1);
    let mut huge = Vec::new();
    put_uvarint(&mut huge, body.len() as u64);
    huge.extend(with_crc(&body));
    assert!(corrupt(&huge));
    // Chunk times that overflow.
    assert!(corrupt(&entry(
        &[],
        &[(i64::MAX - 1, i64::MAX, 8), (0, 0, 9)]
    )));
}
