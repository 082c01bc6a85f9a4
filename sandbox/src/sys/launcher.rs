//! The CLI's start without Rust's runtime, and its allocator.

use std::ffi::CStr;

use super::exit_immediately;

/// What Rust's runtime start-up does for a `main` that a program without it (`#![no_main]`,
/// the `sandbox` CLI) still needs: standard descriptors 0-2 that are closed get `/dev/null`
/// (so no pipe of ours lands on them and is taken for the command's stdio), and SIGPIPE is
/// ignored (so a write to a pipe whose reader died is an `EPIPE` error, not our death). Returns
/// the arguments (`std::env::args` has them only on glibc, which hands them to Rust's standard
/// library before `main`; on musl only the runtime start-up would).
///
/// # Safety
/// `argv` must point to `argc` valid NUL-terminated strings, as C's `main` receives them.
pub unsafe fn start_without_runtime(argc: libc::c_int, argv: *const *const libc::c_char) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: `fds` is a valid array of three pollfds for the duration of the call.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } >= 0 {
        for pollfd in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
            // SAFETY: a NUL-terminated path; open returns the lowest free descriptor, which is
            // this closed one (lower ones were checked or reopened first).
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if fd != pollfd.fd {
                // Nothing sensible is left to do without usable standard descriptors.
                exit_immediately(125);
            }
        }
    }
    // SAFETY: sets a disposition, installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    (0..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: the caller guarantees `argc` valid NUL-terminated strings at `argv`.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            std::ffi::OsStr::from_bytes(arg.to_bytes()).to_os_string()
        })
        .collect()
}

/// The arena of [`LauncherAllocator`]: more than the CLI allocates in a run (~90 KiB; ~0.4 MiB
/// for an overlay run that listed a thousand changes), in `.bss`, so only the pages used are
/// ever touched. Under 2 MiB, so that no transparent huge page (`enabled=always`) is ever zeroed
/// for it whole.
const LAUNCHER_ARENA_BYTES: usize = 1 << 20;

/// The arena's pages are made present this many bytes at a time, ahead of the pieces cut from
/// them: one `madvise(MADV_POPULATE_WRITE)` for 16 pages instead of a page fault each, and a
/// page fault in a virtual machine costs ~2 µs here.
const POPULATE_STEP: usize = 64 << 10;

/// The arena's bytes, page-aligned for `madvise`.
#[repr(C, align(4096))]
struct Arena([u8; LAUNCHER_ARENA_BYTES]);

/// A global allocator for a short-lived launcher (the `sandbox` CLI): pieces are cut from a
/// static arena and not given back, except that the last piece can grow, shrink or be freed in
/// place (a growing `Vec`, a temporary); once the arena is used up, the system allocator takes
/// over. musl's allocator returns freed memory to the kernel at once (`munmap`), and while the
/// init shares the launcher's memory each `munmap` costs a TLB shoot-down on the init's CPU
/// (BENCHMARKS.md).
pub struct LauncherAllocator {
    arena: std::cell::UnsafeCell<Arena>,
    /// Bytes of the arena handed out, from its start.
    used: std::sync::atomic::AtomicUsize,
    /// Bytes of the arena made present (or being made so), from its start.
    populated: std::sync::atomic::AtomicUsize,
}

// SAFETY: the arena is handed out in disjoint pieces, each claimed by an atomic update of
// `used`; the allocator itself never reads or writes a piece's bytes.
unsafe impl Sync for LauncherAllocator {}

impl LauncherAllocator {
    /// An allocator with its whole arena free.
    pub const fn new() -> LauncherAllocator {
        LauncherAllocator {
            arena: std::cell::UnsafeCell::new(Arena([0; LAUNCHER_ARENA_BYTES])),
            used: std::sync::atomic::AtomicUsize::new(0),
            populated: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn base(&self) -> usize {
        self.arena.get() as usize
    }

    /// The offset of `ptr` in the arena, if it points there.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        (ptr as usize).checked_sub(self.base()).filter(|&offset| offset < LAUNCHER_ARENA_BYTES)
    }

    /// Moves the end of the last piece from `from` to `to` (offsets), if it still ends at `from`.
    fn move_end(&self, from: usize, to: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let moved = to <= LAUNCHER_ARENA_BYTES && self.used.compare_exchange(from, to, Relaxed, Relaxed).is_ok();
        if moved {
            self.populate_to(to);
        }
        moved
    }

    /// Makes the arena present up to offset `end`, a [`POPULATE_STEP`] at a time. Where the
    /// kernel lacks `MADV_POPULATE_WRITE` (before Linux 5.14) the pages fault in as they are
    /// touched, as without it.
    fn populate_to(&self, end: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut populated = self.populated.load(Relaxed);
        while populated < end {
            let to = end.next_multiple_of(POPULATE_STEP).min(LAUNCHER_ARENA_BYTES);
            match self.populated.compare_exchange_weak(populated, to, Relaxed, Relaxed) {
                Ok(_) => {
                    // SAFETY: a page-aligned range of the arena, which this allocator owns;
                    // populating keeps the bytes of pages already there and makes the others
                    // present, zeroed, as they would be at their first touch.
                    unsafe {
                        libc::madvise((self.base() + populated) as *mut libc::c_void, to - populated, libc::MADV_POPULATE_WRITE)
                    };
                    return;
                }
                Err(now) => populated = now,
            }
        }
    }
}

impl Default for LauncherAllocator {
    fn default() -> LauncherAllocator {
        LauncherAllocator::new()
    }
}

// SAFETY: every piece is inside the arena, aligned as asked, and disjoint from all others
// handed out (claimed atomically); pieces from the system allocator go back to it.
unsafe impl std::alloc::GlobalAlloc for LauncherAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        let base = self.base();
        let mut used = self.used.load(Relaxed);
        loop {
            let start = (base + used).next_multiple_of(layout.align()) - base;
            let end = start + layout.size();
            if end > LAUNCHER_ARENA_BYTES {
                // SAFETY: the caller's layout, passed on.
                return unsafe { std::alloc::System.alloc(layout) };
            }
            match self.used.compare_exchange_weak(used, end, Relaxed, Relaxed) {
                Ok(_) => {
                    self.populate_to(end);
                    return (base + start) as *mut u8;
                }
                Err(now) => used = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        match self.offset(ptr) {
            // Only the last piece is taken back.
            Some(start) => {
                self.move_end(start + layout.size(), start);
            }
            // SAFETY: a piece of the system allocator with this layout, as the caller promises.
            None => unsafe { std::alloc::System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let Some(start) = self.offset(ptr) else {
            // SAFETY: a piece of the system allocator, as the caller promises.
            return unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        };
        if self.move_end(start + layout.size(), start + new_size) || new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller promises a valid size for this alignment.
        let new_layout = unsafe { std::alloc::Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero size (larger than the old one).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both pieces are valid for the old size and do not overlap (the new one
            // was handed out while the old one was still in use).
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
            // SAFETY: the old piece with its layout, no longer used.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::{LauncherAllocator, LAUNCHER_ARENA_BYTES};

    #[test]
    fn launcher_allocator_cuts_aligned_disjoint_pieces_and_falls_back_to_the_system() {
        static ARENA: LauncherAllocator = LauncherAllocator::new();
        let in_arena = |p: *mut u8| ARENA.offset(p).is_some();
        let small = Layout::from_size_align(24, 8).unwrap();
        let aligned = Layout::from_size_align(100, 64).unwrap();
        // SAFETY: for the whole test: non-zero layouts; every piece is freed with its own layout.
        unsafe {
            let a = ARENA.alloc(small);
            // Made present ahead: a step of pages, though only 24 bytes were asked for and none
            // was touched.
            let pages = super::POPULATE_STEP / 4096;
            let mut resident = vec![0u8; pages];
            nix::errno::Errno::result(libc::mincore(ARENA.base() as *mut libc::c_void, super::POPULATE_STEP, resident.as_mut_ptr()))
                .unwrap();
            assert!(resident.iter().all(|page| page & 1 == 1), "pages not present: {resident:?}");
            let b = ARENA.alloc(aligned);
            assert!(in_arena(a) && in_arena(b));
            assert_eq!(b as usize % 64, 0, "alignment kept");
            assert!(b as usize >= a as usize + 24, "pieces overlap");
            // The last piece grows in place, a piece before it moves.
            assert_eq!(ARENA.realloc(b, aligned, 4000), b);
            let b_layout = Layout::from_size_align(4000, 64).unwrap();
            b.write_bytes(7, 4000);
            let a2 = ARENA.realloc(a, small, 48);
            assert_ne!(a2, a);
            assert!(a2 as usize >= b as usize + 4000);
            // Freeing the last piece gives its room back to the next one.
            ARENA.dealloc(a2, Layout::from_size_align(48, 8).unwrap());
            let c = ARENA.alloc(small);
            assert_eq!(c, a2);
            assert_eq!(*b.add(3999), 7, "a neighbour's bytes are untouched");
            // Past the arena: the system allocator, whose pieces go back to it.
            let big = Layout::from_size_align(LAUNCHER_ARENA_BYTES, 8).unwrap();
            let d = ARENA.alloc(big);
            assert!(!d.is_null() && !in_arena(d));
            d.write_bytes(1, LAUNCHER_ARENA_BYTES);
            let d2 = ARENA.realloc(d, big, 2 * LAUNCHER_ARENA_BYTES);
            assert!(!in_arena(d2) && *d2.add(LAUNCHER_ARENA_BYTES - 1) == 1);
            ARENA.dealloc(d2, Layout::from_size_align(2 * LAUNCHER_ARENA_BYTES, 8).unwrap());
            ARENA.dealloc(c, small);
            ARENA.dealloc(b, b_layout);
        }
    }
}
