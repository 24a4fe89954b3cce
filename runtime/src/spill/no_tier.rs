//! Builds without the `disk` feature (the browser playground) have no disk tier: this
//! type has no values, so every disk path compiles away.

use super::backend::DiskConfig;

pub type TierError = String;
pub(crate) type Victim = (Vec<u8>, u64, Vec<u8>);

pub(crate) enum Tier {}

impl Tier {
    pub(crate) fn open(_: &DiskConfig) -> Result<Tier, TierError> {
        Err("this build has no disk state backend (cargo feature `disk`)".into())
    }
    pub(crate) fn memory(&self) -> usize {
        match *self {}
    }
    pub(crate) fn len(&self) -> u64 {
        match *self {}
    }
    pub(crate) fn take<R>(
        &mut self,
        _: &[u8],
        _: impl FnOnce(u64, &[u8]) -> R,
    ) -> Result<Option<R>, TierError> {
        match *self {}
    }
    pub(crate) fn peek<R>(
        &self,
        _: &[u8],
        _: impl FnOnce(u64, &[u8]) -> R,
    ) -> Result<Option<R>, TierError> {
        match *self {}
    }
    pub(crate) fn take_sorted(
        &mut self,
        _: &[&[u8]],
        _: impl FnMut(usize, u64, &[u8]) -> Result<(), TierError>,
    ) -> Result<(), TierError> {
        match *self {}
    }
    pub(crate) fn forget(&mut self, _: Vec<u8>) {
        match *self {}
    }
    pub(crate) fn write_with<R, Then: FnOnce() -> R>(
        &mut self,
        _: impl FnOnce() -> Result<(super::batch::Batch, Then), TierError>,
    ) -> Result<(super::batch::Batch, bool, R), TierError> {
        match *self {}
    }
    pub(crate) fn entries(
        &self,
    ) -> Result<impl Iterator<Item = Result<Victim, TierError>> + '_, TierError> {
        match *self {}
        #[allow(unreachable_code)]
        Ok(std::iter::empty())
    }
    pub(crate) fn changed_after(
        &self,
        _: u64,
        _: impl FnMut(&[u8], &[u8]) -> Result<(), TierError>,
    ) -> Result<(), TierError> {
        match *self {}
    }
    pub(crate) fn ack(&self, _: u64) {
        match *self {}
    }
}

/// Never made (there is no tier to look up), but a value type, so that the code
/// holding one is not unreachable to the compiler.
pub(crate) struct Ahead;
pub(crate) enum Fetched {}

impl Fetched {
    pub(crate) fn found(&self) -> std::iter::Empty<usize> {
        match *self {}
    }
}

impl Tier {
    pub(crate) fn look_up_ahead(&self, _: Vec<u8>, _: Vec<(usize, usize)>, _: Vec<usize>) -> Ahead {
        match *self {}
    }
    pub(crate) fn fetched(&self, _: Ahead) -> Result<Fetched, TierError> {
        match *self {}
    }
    pub(crate) fn written_since(&self, _: &Fetched) -> bool {
        match *self {}
    }
    pub(crate) fn take_fetched<R>(
        &mut self,
        _: &Fetched,
        _: usize,
        _: impl FnOnce(u64, &[u8]) -> R,
    ) -> Result<Option<R>, TierError> {
        match *self {}
    }
    pub(crate) fn fetched_absent(&mut self, _: &Fetched) {
        match *self {}
    }
}
