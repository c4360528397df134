//! The shard cache's file reader as a fuzz target (issue 8's rule for every reader, beside
//! `tests/fuzz.rs`): a shard file with any bytes changed — its counts, its offsets, its
//! tokens — and a CRC-32 that matches them (as a manifest rewritten by hand would give) is
//! refused by name or read whole, and never panics. `MappedShard::open` promises that once a
//! file is open no access can fall outside it; this checks that promise on every document and
//! sentence the file claims.

mod common;

use pretext::data::shards::{write_shard, MappedShard};
use pretext::data::{Shard, TokenDoc};
use proptest::prelude::*;
use std::path::PathBuf;

/// Documents of 1–3 sentences of 1–5 tokens: a real shard, small enough that most changed
/// bytes land in the header and offsets, where the reader's checks are.
fn docs() -> impl Strategy<Value = Vec<TokenDoc>> {
    let sentence = prop::collection::vec(0u32..50, 1..6);
    prop::collection::vec(prop::collection::vec(sentence, 1..4), 0..5)
}

/// A folder of this process's own for the files the cases write.
fn folder() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| common::scratch("fuzz-shards"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases(), ..ProptestConfig::default() })]

    #[test]
    fn a_changed_shard_is_refused_by_name_or_read_whole(
        docs in docs(),
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let file = folder().join("shard.bin");
        write_shard(&file, &docs).unwrap();
        let mut raw = std::fs::read(&file).unwrap();
        for (at, byte) in &changes {
            let i = at.index(raw.len());
            raw[i] = *byte;
        }
        if let Some(cut) = cut {
            raw.truncate(cut.index(raw.len() + 1));
        }
        std::fs::write(&file, &raw).unwrap();
        match MappedShard::open(&file, crc32fast::hash(&raw)) {
            Err(e) => prop_assert!(e.to_string().contains(".bin"), "{e}"),
            Ok(m) => {
                let shard = Shard::Mapped(m);
                let mut tokens = 0;
                for d in 0..shard.documents() {
                    for s in 0..shard.sentences(d) {
                        tokens += shard.sentence(d, s).len();
                    }
                }
                prop_assert_eq!(tokens, shard.tokens());
            }
        }
    }
}
