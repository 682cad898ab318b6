//! Transparent huge pages for the large column buffers of a CSV read.
//!
//! A column of a million `f64` is 8 MB: 2,000 fresh 4 KiB pages, each a page fault that the
//! kernel must zero and map — on the development VM about 40 % of a large CSV read went there.
//! Where transparent huge pages are enabled only on request (`madvise`, the common default),
//! [`advise`] asks for them on a buffer of at least [`MIN_BYTES`] before it is written, so the
//! same memory takes a few hundred 2 MiB faults instead. NumPy does the same for its arrays
//! (and so for pandas' columns). The advice changes neither the buffer's contents nor its
//! permissions; it is ignored where the kernel does not support it, and does nothing on other
//! systems. `DLP_NO_HUGEPAGES=1` turns it off, to measure the difference (on the development VM
//! a fresh process's read of the 1,000,000-row benchmark CSV took 0.156 s with it and 0.173 s
//! without, medians of 15 alternating runs).

#![allow(unsafe_code, reason = "one madvise call on a live buffer's own pages, see `advise`")]

/// Buffers smaller than this are left alone (NumPy's threshold).
pub const MIN_BYTES: usize = 4 << 20;

/// Asks for huge pages on the allocated capacity of `buffer` (when it is at least
/// [`MIN_BYTES`], and `DLP_NO_HUGEPAGES` is not set); call it right after reserving, before the values are written.
pub fn advise<T>(buffer: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let bytes = buffer.capacity() * size_of::<T>();
        if bytes < MIN_BYTES || std::env::var_os("DLP_NO_HUGEPAGES").is_some() {
            return;
        }
        let start = buffer.as_ptr() as usize;
        let (first, end) = (start.div_ceil(PAGE) * PAGE, (start + bytes) / PAGE * PAGE);
        if end > first {
            // SAFETY: `first..end` lies inside `buffer`'s allocation (rounded inwards to whole
            // pages), which is live for the call. MADV_HUGEPAGE is advice about how the kernel
            // backs those pages; it does not change their contents, mapping or protection, so
            // no Rust reference to them is affected. A failure (EINVAL where THP is not built
            // in) leaves the pages as they were, so its result is ignored.
            let _ = unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buffer;
}

#[cfg(test)]
mod tests {
    #[test]
    fn advice_leaves_the_values_as_they_are() {
        let mut v: Vec<f64> = Vec::with_capacity(1 << 20);
        super::advise(&v);
        v.extend((0..1 << 20).map(|i| i as f64));
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f64));
        let small: Vec<u8> = Vec::with_capacity(10);
        super::advise(&small);
    }
}
