//! What the localStorage store deletes when the browser's quota is full.
//!
//! Plain Rust (no browser types), so that the choice is unit-tested natively; the store
//! implements [`Checkpoints`] over `window.localStorage`.

use simplestream::coordinator::id_from_name;
use simplestream::envelope;

/// A store's checkpoints, as pruning sees them.
pub trait Checkpoints {
    /// Names of the stored checkpoints.
    fn names(&self) -> Vec<String>;
    /// A checkpoint's bytes, if they can be read.
    fn read(&self, name: &str) -> Option<Vec<u8>>;
    /// Deletes a checkpoint (best effort: a failed delete only frees less room).
    fn remove(&mut self, name: &str);
}

/// Deletes checkpoints to make room, oldest first, and returns their names. Kept: the
/// names in `keep` (the checkpoint `latest` names, the one being written) and the newest
/// checkpoint that verifies, so that a restore has something to fall back to when the
/// one `latest` names is damaged and the retried write fails as well.
pub fn prune(store: &mut impl Checkpoints, keep: &[Option<String>]) -> Vec<String> {
    let mut names = store.names();
    names.sort_by_key(|n| (id_from_name(n), n.clone()));
    let newest_good = names
        .iter()
        .rev()
        .find(|n| store.read(n).is_some_and(|b| envelope::verify(&b).is_ok()))
        .cloned();
    let doomed: Vec<String> = names
        .into_iter()
        .filter(|n| !keep.iter().flatten().any(|k| k == n) && newest_good.as_ref() != Some(n))
        .collect();
    for n in &doomed {
        store.remove(n);
    }
    doomed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use simplestream::coordinator::checkpoint_name;
    use simplestream::{Codec, Pipeline};

    use super::*;
    use crate::gallery::{Order, Orders};

    /// An in-memory stand-in for localStorage's checkpoint keys.
    #[derive(Default)]
    struct Fake(BTreeMap<String, Vec<u8>>);

    impl Checkpoints for Fake {
        fn names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
        fn read(&self, name: &str) -> Option<Vec<u8>> {
            self.0.get(name).cloned()
        }
        fn remove(&mut self, name: &str) {
            self.0.remove(name);
        }
    }

    /// Checkpoints 1..=n of a real pipeline; returns the store and their names.
    fn stored(n: u64, codec: Codec) -> (Fake, Vec<String>) {
        let mut p = Orders::new();
        let mut out = Vec::new();
        let mut fake = Fake::default();
        let mut names = Vec::new();
        for id in 1..=n {
            p.process(
                Order {
                    customer: "C1".into(),
                    amount: 1.0,
                    ts: id as i64 * 1_000,
                },
                &mut out,
            );
            let bytes = envelope::encode(&p, codec, id, 0, BTreeMap::new()).unwrap();
            let name = checkpoint_name(id as i64 * 1_000, id, codec);
            fake.0.insert(name.clone(), bytes);
            names.push(name);
        }
        (fake, names)
    }

    #[test]
    fn a_corrupt_latest_keeps_the_newest_checkpoint_that_verifies() {
        for codec in [Codec::Json, Codec::Binary] {
            let (mut fake, names) = stored(5, codec);
            // `latest` names checkpoint 5, whose bytes are damaged.
            let latest = names[4].clone();
            fake.0.get_mut(&latest).unwrap()[20] ^= 0x55;
            let writing = "checkpoint_20241201_140000_000-000006.json".to_string();
            let deleted = prune(&mut fake, &[Some(latest.clone()), Some(writing)]);
            assert_eq!(deleted, names[..3].to_vec(), "{codec}");
            assert_eq!(fake.names(), vec![names[3].clone(), latest], "{codec}");
            assert!(envelope::verify(&fake.read(&names[3]).unwrap()).is_ok());
        }
    }

    #[test]
    fn a_good_latest_is_the_one_kept_and_older_ones_go() {
        let (mut fake, names) = stored(4, Codec::Json);
        let deleted = prune(&mut fake, &[Some(names[3].clone()), None]);
        assert_eq!(deleted, names[..3].to_vec());
        assert_eq!(fake.names(), vec![names[3].clone()]);
    }

    #[test]
    fn newer_damaged_checkpoints_do_not_hide_an_older_good_one() {
        let (mut fake, names) = stored(4, Codec::Binary);
        for n in &names[2..] {
            let b = fake.0.get_mut(n).unwrap();
            b.truncate(b.len() / 2);
        }
        // No `latest` at all (it was lost): checkpoint 2 is what a restore would use.
        let deleted = prune(&mut fake, &[None, None]);
        assert_eq!(
            deleted,
            vec![names[0].clone(), names[2].clone(), names[3].clone()]
        );
        assert_eq!(fake.names(), vec![names[1].clone()]);
    }
}
