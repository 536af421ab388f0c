//! The request buffer a model host shares with its parent: one memfd, mapped by both.
//!
//! A batch of 256 MNIST images is 800 KB. Through the pipe it was copied five times
//! (encode, frame, kernel in, kernel out, decode) in 64 KiB turns of the scheduler;
//! through this buffer the parent writes it once and the child reads it once, and the
//! pipe carries only a 5-byte "predict `n` from the buffer" frame. The child writes
//! the answer's logits back over the request (it has copied the request out by then).
//!
//! Who trusts what:
//! - The parent creates the memfd close-on-exec, fixes its size with seals (so the
//!   child can never make the parent's mapping fault), and clears close-on-exec only
//!   in the one child it spawns (between fork and exec): no other host inherits it.
//! - The child maps it before it locks down and closes the descriptor at once; after
//!   lock-down it has the mapping and nothing else. Every count the parent sends is
//!   checked against the mapping's length before a byte is read.
//! - The parent reads back at most `n * classes` values it asked for, copies them
//!   out, and never reads anything else the child may have written there.
//!
//! Values are native-endian f32 (both processes run on the same machine).

// mmap, memfd_create and fcntl have no safe wrapper in std or in the crates we use;
// every `unsafe` block is one libc call, or one copy bounded by the mapping's length.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

/// A shared mapping of `len` bytes, unmapped on drop.
#[derive(Debug)]
pub(crate) struct SharedBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access goes through
// `&self`/`&mut self`, so Rust's borrow rules order it within the process.
unsafe impl Send for SharedBuffer {}
// SAFETY: as above; `&self` methods only read.
unsafe impl Sync for SharedBuffer {}

impl SharedBuffer {
    /// Parent side: a new sealed memfd of `len` bytes, mapped read-write. The
    /// descriptor is close-on-exec; hand it to one child with [`inherit_in_child`].
    pub(crate) fn create(len: usize) -> io::Result<(Self, OwnedFd)> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty shared buffer",
            ));
        }
        // SAFETY: a NUL-terminated name and a flag word.
        let raw = unsafe {
            libc::memfd_create(
                c"riposte-model-host".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size = libc::off_t::try_from(len).map_err(io::Error::other)?;
        // SAFETY: plain integer arguments on a descriptor we own.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: plain integer arguments on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let buffer = Self::map(fd.as_raw_fd(), len)?;
        Ok((buffer, fd))
    }

    /// Child side: maps the inherited descriptor `fd` (which must hold at least `len`
    /// bytes) and closes it; the mapping outlives the descriptor.
    pub(crate) fn map_inherited(fd: RawFd, len: usize) -> io::Result<Self> {
        if fd <= 2 {
            // Taking ownership would close one of the pipes.
            return Err(io::Error::other(format!(
                "shared buffer on descriptor {fd}, one of stdin/stdout/stderr"
            )));
        }
        // SAFETY: the parent passed this descriptor to us alone; from here on this
        // function owns it and closes it on return.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: `stat` points to writable memory of the right size.
        if unsafe { libc::fstat(fd.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstat filled the struct (and it was zeroed before).
        let size = unsafe { stat.assume_init() }.st_size;
        if u64::try_from(size).unwrap_or(0) < len as u64 {
            return Err(io::Error::other(format!(
                "shared buffer holds {size} bytes, the config says {len}"
            )));
        }
        Self::map(fd.as_raw_fd(), len)
    }

    fn map(fd: RawFd, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of `len` bytes of a file at least that long;
        // the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("null mapping"))?;
        Ok(Self { ptr, len })
    }

    /// How many f32 values fit.
    pub(crate) fn capacity(&self) -> usize {
        self.len / 4
    }

    /// Copies `values` to the start of the buffer; `false` (nothing copied) when they
    /// do not fit.
    pub(crate) fn write(&mut self, values: &[f32]) -> bool {
        if values.len() > self.capacity() {
            return false;
        }
        // SAFETY: the mapping is page-aligned and at least `values.len() * 4` bytes
        // long (checked above); source and destination cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                values.as_ptr(),
                self.ptr.as_ptr().cast::<f32>(),
                values.len(),
            );
        }
        true
    }

    /// Copies the first `out.len()` values of the buffer into `out`; `false` (nothing
    /// copied) when the buffer is shorter.
    pub(crate) fn read_into(&self, out: &mut [f32]) -> bool {
        if out.len() > self.capacity() {
            return false;
        }
        // SAFETY: as in `write`. Every bit pattern is a valid f32, so whatever the
        // other process left there is a value, never undefined behaviour of ours.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().cast::<f32>(),
                out.as_mut_ptr(),
                out.len(),
            );
        }
        true
    }

    /// The first `count` values, copied out; `None` when the buffer is shorter.
    pub(crate) fn read(&self, count: usize) -> Option<Vec<f32>> {
        let mut out = vec![0f32; count.min(self.capacity())];
        (out.len() == count && self.read_into(&mut out)).then_some(out)
    }
}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value owns; nothing borrows it now.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Makes `fd` survive the exec of `command`'s child, and of that child only: the
/// descriptor stays close-on-exec in this process, so no other host spawned
/// meanwhile inherits it.
pub(crate) fn pass_to_child(command: &mut tokio::process::Command, fd: RawFd) {
    // SAFETY: the closure runs between fork and exec and makes one async-signal-safe
    // call (fcntl) with plain integer arguments; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn both_mappings_see_the_same_values_and_counts_are_bounded() {
        let (mut parent, fd) = SharedBuffer::create(16).unwrap();
        // SAFETY (test): a second descriptor for the same memfd, owned by the mapping call.
        let dup = unsafe { libc::dup(fd.as_raw_fd()) };
        let child = SharedBuffer::map_inherited(dup, 16).unwrap();
        assert!(parent.write(&[1.0, -2.5, 3.0, 4.0]));
        assert_eq!(child.read(3).unwrap(), vec![1.0, -2.5, 3.0]);
        assert!(child.read(5).is_none());
        assert!(!parent.write(&[0.0; 5]));
    }

    #[test]
    fn a_buffer_cannot_be_shrunk_under_its_mappings() {
        let (_buffer, fd) = SharedBuffer::create(4096).unwrap();
        // SAFETY (test): plain integer arguments.
        let rc = unsafe { libc::ftruncate(fd.as_raw_fd(), 0) };
        assert_ne!(rc, 0, "the size seal must refuse to shrink the memfd");
    }

    #[test]
    fn a_child_refuses_a_buffer_shorter_than_announced() {
        let (_buffer, fd) = SharedBuffer::create(4096).unwrap();
        // SAFETY (test): a second descriptor for the same memfd.
        let dup = unsafe { libc::dup(fd.as_raw_fd()) };
        assert!(SharedBuffer::map_inherited(dup, 8192).is_err());
    }
}
