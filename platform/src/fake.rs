//! A platform that runs nothing: its address spaces record what is mapped
//! (checking the same arguments the real backends check). For the sentry's
//! unit tests and fuzzing, which exercise memory management and loading
//! without host processes.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::{
    page_aligned, AddressSpace, ArchState, Capabilities, Context, Error, Event, FileRange, Interrupt,
    InterruptHandle, Platform, Prot, Result,
};

/// The fake platform.
#[derive(Debug, Clone, Copy)]
pub struct FakePlatform {
    /// Lowest user address.
    pub min: u64,
    /// One past the highest user address.
    pub max: u64,
}

impl Default for FakePlatform {
    fn default() -> Self {
        FakePlatform { min: 0x1000, max: 0x7fff_ffff_e000 }
    }
}

/// A recorded mapping: length, protections, file offset.
pub type Mapping = (u64, Prot, u64);

/// An address space that records mappings page by page.
#[derive(Debug, Default)]
pub struct FakeAddressSpace {
    min: u64,
    max: u64,
    /// Page address → (protections, file offset of the page).
    pages: Mutex<BTreeMap<u64, (Prot, u64)>>,
}

impl FakeAddressSpace {
    /// Protections the page at `addr` is mapped with, if it is.
    pub fn mapped(&self, addr: u64) -> Option<Prot> {
        self.pages.lock().unwrap_or_else(|p| p.into_inner()).get(&(addr & !0xfff)).map(|&(p, _)| p)
    }

    /// Number of mapped pages.
    pub fn mapped_pages(&self) -> usize {
        self.pages.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn check(&self, addr: u64, len: u64) -> Result<()> {
        if len == 0
            || !page_aligned(addr)
            || !page_aligned(len)
            || addr < self.min
            || addr.checked_add(len).is_none_or(|e| e > self.max)
        {
            return Err(Error::InvalidRange { addr, len });
        }
        Ok(())
    }
}

impl AddressSpace for FakeAddressSpace {
    fn map(&self, addr: u64, len: u64, prot: Prot, file: FileRange<'_>) -> Result<()> {
        self.check(addr, len)?;
        let mut p = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        for i in (0..len).step_by(4096) {
            p.insert(addr + i, (prot, file.offset + i));
        }
        Ok(())
    }

    fn unmap(&self, addr: u64, len: u64) -> Result<()> {
        self.check(addr, len)?;
        let mut p = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<u64> = p.range(addr..addr + len).map(|(&k, _)| k).collect();
        for k in keys {
            p.remove(&k);
        }
        Ok(())
    }

    fn protect(&self, addr: u64, len: u64, prot: Prot) -> Result<()> {
        self.check(addr, len)?;
        let mut p = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        for (_, v) in p.range_mut(addr..addr + len) {
            v.0 = prot;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct NoInterrupt;

impl Interrupt for NoInterrupt {
    fn interrupt(&self) {}
}

/// A context that cannot run anything.
#[derive(Debug)]
pub struct FakeContext;

impl Context for FakeContext {
    fn switch(&mut self, _a: &dyn AddressSpace, _arch: &mut ArchState) -> Result<Event> {
        Err(Error::Internal("the fake platform runs nothing".into()))
    }

    fn interrupt_handle(&self) -> InterruptHandle {
        InterruptHandle::new(std::sync::Arc::new(NoInterrupt))
    }

    fn fetch_fp(&mut self, _arch: &mut ArchState) -> Result<()> {
        Ok(())
    }
}

impl Platform for FakePlatform {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { fault_access_type: false }
    }

    fn min_user_address(&self) -> u64 {
        self.min
    }

    fn max_user_address(&self) -> u64 {
        self.max
    }

    fn new_address_space(&self) -> Result<Box<dyn AddressSpace>> {
        Ok(Box::new(FakeAddressSpace { min: self.min, max: self.max, ..FakeAddressSpace::default() }))
    }

    fn new_context(&self) -> Result<Box<dyn Context>> {
        Ok(Box::new(FakeContext))
    }
}
