//! Storage for exports larger than memory: fixed-size records appended to a log, or sorted
//! in runs and read back merged (an external sort). Each structure keeps up to
//! [`BUFFER_BYTES`] in memory; beyond that it writes to an anonymous temporary file (in
//! `TMPDIR`, deleted by the system when closed), so a ten-million-post export costs disk,
//! not memory, and a small one never touches the disk.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A value stored as exactly `SIZE` bytes.
pub trait Record: Copy {
    const SIZE: usize;
    fn write(&self, out: &mut [u8]);
    fn read(bytes: &[u8]) -> Self;
}

/// Memory each log or sorter keeps before it writes to disk.
pub const BUFFER_BYTES: usize = 16 << 20;

/// Bytes read at a time from each run while merging.
const READ_BYTES: usize = 64 << 10;

fn records_in<T: Record>(bytes: usize) -> usize {
    (bytes / T::SIZE).max(1)
}

/// Numbers are records of their own size, stored little-endian (a record's fields are).
macro_rules! little_endian_records {
    ($($ty:ty),*) => {$(
        impl Record for $ty {
            const SIZE: usize = std::mem::size_of::<$ty>();
            fn write(&self, out: &mut [u8]) {
                out[..Self::SIZE].copy_from_slice(&self.to_le_bytes());
            }
            fn read(bytes: &[u8]) -> Self {
                let mut word = [0u8; std::mem::size_of::<$ty>()];
                word.copy_from_slice(&bytes[..Self::SIZE]);
                <$ty>::from_le_bytes(word)
            }
        }
    )*};
}

little_endian_records!(u8, u32, u64, i64, u128);

/// Declares a struct of numbers and makes it a [`Record`]: its fields stored one after the
/// other in the order declared.
macro_rules! fixed_record {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$field_meta:meta])* $field_vis:vis $field:ident: $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$field_meta])* $field_vis $field: $ty),*
        }

        impl $crate::spill::Record for $name {
            const SIZE: usize = 0 $(+ <$ty as $crate::spill::Record>::SIZE)*;
            fn write(&self, out: &mut [u8]) {
                let mut at = 0;
                $(
                    $crate::spill::Record::write(&self.$field, &mut out[at..]);
                    at += <$ty as $crate::spill::Record>::SIZE;
                )*
                debug_assert_eq!(at, Self::SIZE);
            }
            fn read(bytes: &[u8]) -> Self {
                let mut at = 0;
                $(
                    let $field = <$ty as $crate::spill::Record>::read(&bytes[at..]);
                    at += <$ty as $crate::spill::Record>::SIZE;
                )*
                debug_assert_eq!(at, Self::SIZE);
                Self { $($field),* }
            }
        }
    };
}
pub(crate) use fixed_record;

/// A temporary file that records are appended to.
#[derive(Debug)]
struct SpillFile {
    file: File,
    bytes: u64,
}

impl SpillFile {
    /// The file in `slot`, created there on first use.
    fn in_slot(slot: &mut Option<SpillFile>) -> io::Result<&mut SpillFile> {
        if slot.is_none() {
            *slot = Some(Self {
                file: tempfile::tempfile()?,
                bytes: 0,
            });
        }
        slot.as_mut()
            .ok_or_else(|| io::Error::other("spill file missing"))
    }

    /// Appends `records`; returns the byte offset where they start.
    fn append<T: Record>(&mut self, records: &[T]) -> io::Result<u64> {
        let start = self.bytes;
        let mut chunk = vec![0u8; records_in::<T>(READ_BYTES).min(records.len()) * T::SIZE];
        for group in records.chunks(records_in::<T>(READ_BYTES)) {
            let bytes = &mut chunk[..group.len() * T::SIZE];
            for (record, out) in group.iter().zip(bytes.chunks_exact_mut(T::SIZE)) {
                record.write(out);
            }
            self.file.write_all_at(bytes, self.bytes)?;
            self.bytes += bytes.len() as u64;
        }
        Ok(start)
    }
}

/// Reads records from a byte range of a spill file, a chunk at a time.
struct RunReader<'a, T> {
    file: &'a File,
    next: u64,
    end: u64,
    buffer: Vec<u8>,
    at: usize,
    _record: std::marker::PhantomData<T>,
}

impl<'a, T: Record> RunReader<'a, T> {
    fn new(file: &'a File, start: u64, end: u64) -> Self {
        Self {
            file,
            next: start,
            end,
            buffer: Vec::new(),
            at: 0,
            _record: std::marker::PhantomData,
        }
    }

    fn next_record(&mut self) -> io::Result<Option<T>> {
        if self.at == self.buffer.len() {
            if self.next >= self.end {
                return Ok(None);
            }
            let chunk = (records_in::<T>(READ_BYTES) * T::SIZE) as u64;
            let len = chunk.min(self.end - self.next) as usize;
            self.buffer.resize(len, 0);
            self.file.read_exact_at(&mut self.buffer, self.next)?;
            self.next += len as u64;
            self.at = 0;
        }
        let record = T::read(&self.buffer[self.at..self.at + T::SIZE]);
        self.at += T::SIZE;
        Ok(Some(record))
    }
}

/// An append-only sequence of records: the oldest on disk once there are many, the newest
/// in memory. Read back in order, or one at a time by position.
#[derive(Debug)]
pub struct RecordLog<T> {
    spill: Option<SpillFile>,
    /// Records on disk (all before the ones in `tail`).
    flushed: u64,
    tail: Vec<T>,
    limit: usize,
}

impl<T: Record> Default for RecordLog<T> {
    fn default() -> Self {
        Self::with_buffer(BUFFER_BYTES)
    }
}

impl<T: Record> RecordLog<T> {
    pub fn with_buffer(bytes: usize) -> Self {
        Self {
            spill: None,
            flushed: 0,
            tail: Vec::new(),
            limit: records_in::<T>(bytes),
        }
    }

    pub fn len(&self) -> u64 {
        self.flushed + self.tail.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, record: T) -> io::Result<()> {
        self.tail.push(record);
        self.flush_when_full()
    }

    /// Appends `records` in order, as one copy.
    pub fn extend(&mut self, records: &[T]) -> io::Result<()> {
        self.tail.extend_from_slice(records);
        self.flush_when_full()
    }

    fn flush_when_full(&mut self) -> io::Result<()> {
        if self.tail.len() >= self.limit {
            SpillFile::in_slot(&mut self.spill)?.append(&self.tail)?;
            self.flushed += self.tail.len() as u64;
            self.tail.clear();
        }
        Ok(())
    }

    /// The record at `index`, `None` past the end.
    pub fn get(&self, index: u64) -> io::Result<Option<T>> {
        Ok(self.get_range(index, 1)?.pop())
    }

    /// The records at `start..start + count` that exist, with one read for those on disk.
    pub fn get_range(&self, start: u64, count: u64) -> io::Result<Vec<T>> {
        let end = (start + count).min(self.len());
        let mut records = Vec::with_capacity(end.saturating_sub(start) as usize);
        if let (Some(spill), true) = (&self.spill, start < self.flushed) {
            let disk_end = end.min(self.flushed);
            let mut bytes = vec![0u8; ((disk_end - start) as usize) * T::SIZE];
            spill
                .file
                .read_exact_at(&mut bytes, start * T::SIZE as u64)?;
            records.extend(bytes.chunks_exact(T::SIZE).map(T::read));
        }
        let tail_start = start.max(self.flushed);
        if tail_start < end {
            let from = (tail_start - self.flushed) as usize;
            let to = (end - self.flushed) as usize;
            records.extend_from_slice(&self.tail[from..to]);
        }
        Ok(records)
    }

    /// Calls `visit` with every record in order.
    pub fn for_each(&self, mut visit: impl FnMut(u64, T)) -> io::Result<()> {
        let mut index = 0;
        if let Some(spill) = &self.spill {
            let mut reader = RunReader::<T>::new(&spill.file, 0, spill.bytes);
            while let Some(record) = reader.next_record()? {
                visit(index, record);
                index += 1;
            }
        }
        for &record in &self.tail {
            visit(index, record);
            index += 1;
        }
        Ok(())
    }
}

/// Collects records in any order; [`Sorter::finish`] gives them back sorted.
#[derive(Debug)]
pub struct Sorter<T> {
    buffer: Vec<T>,
    limit: usize,
    spill: Option<SpillFile>,
    /// Byte ranges of the sorted runs on disk.
    runs: Vec<(u64, u64)>,
}

impl<T: Record + Ord> Default for Sorter<T> {
    fn default() -> Self {
        Self::with_buffer(BUFFER_BYTES)
    }
}

impl<T: Record + Ord> Sorter<T> {
    pub fn with_buffer(bytes: usize) -> Self {
        Self {
            buffer: Vec::new(),
            limit: records_in::<T>(bytes),
            spill: None,
            runs: Vec::new(),
        }
    }

    pub fn push(&mut self, record: T) -> io::Result<()> {
        self.buffer.push(record);
        if self.buffer.len() >= self.limit {
            let mut run = std::mem::take(&mut self.buffer);
            run.sort_unstable();
            self.write_run(&run)?;
            run.clear();
            self.buffer = run;
        }
        Ok(())
    }

    /// Writes an already sorted run to disk as it is.
    pub fn push_sorted_run(&mut self, run: &[T]) -> io::Result<()> {
        debug_assert!(run.windows(2).all(|w| w[0] <= w[1]));
        self.write_run(run)
    }

    fn write_run(&mut self, run: &[T]) -> io::Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        let start = SpillFile::in_slot(&mut self.spill)?.append(run)?;
        self.runs
            .push((start, start + (run.len() * T::SIZE) as u64));
        Ok(())
    }

    /// Everything pushed, sorted. Once anything went to disk, the rest follows it and no
    /// record stays in memory.
    pub fn finish(mut self) -> io::Result<Sorted<T>> {
        let mut memory = std::mem::take(&mut self.buffer);
        memory.sort_unstable();
        if self.spill.is_some() {
            self.write_run(&memory)?;
            memory = Vec::new();
        } else {
            memory.shrink_to_fit();
        }
        Ok(Sorted {
            spill: self.spill,
            runs: self.runs,
            memory,
        })
    }
}

/// Sorted runs, read back as one sorted sequence as many times as needed. Equal records
/// from different runs all come back (callers that count merge them).
#[derive(Debug)]
pub struct Sorted<T> {
    spill: Option<SpillFile>,
    runs: Vec<(u64, u64)>,
    memory: Vec<T>,
}

impl<T> Default for Sorted<T> {
    fn default() -> Self {
        Self {
            spill: None,
            runs: Vec::new(),
            memory: Vec::new(),
        }
    }
}

impl<T: Record + Ord> Sorted<T> {
    /// From records already in memory (sorted here).
    pub fn from_vec(mut records: Vec<T>) -> Self {
        records.sort_unstable();
        Self {
            memory: records,
            ..Self::default()
        }
    }

    pub fn len(&self) -> u64 {
        let on_disk: u64 = self.runs.iter().map(|(s, e)| e - s).sum();
        on_disk / T::SIZE as u64 + self.memory.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any of it lies on disk.
    pub fn spilled(&self) -> bool {
        !self.runs.is_empty()
    }

    pub fn iter(&self) -> io::Result<Merge<'_, T>> {
        let mut merge = Merge {
            readers: Vec::new(),
            memory: self.memory.iter(),
            heap: BinaryHeap::new(),
        };
        if let Some(spill) = &self.spill {
            for &(start, end) in &self.runs {
                merge.readers.push(RunReader::new(&spill.file, start, end));
            }
        }
        for source in 0..=merge.readers.len() {
            merge.refill(source)?;
        }
        Ok(merge)
    }
}

/// The k-way merge of a [`Sorted`]'s runs.
pub struct Merge<'a, T> {
    readers: Vec<RunReader<'a, T>>,
    /// The in-memory run, source number `readers.len()`.
    memory: std::slice::Iter<'a, T>,
    heap: BinaryHeap<Reverse<(T, usize)>>,
}

impl<T: Record + Ord> Merge<'_, T> {
    fn refill(&mut self, source: usize) -> io::Result<()> {
        let next = match self.readers.get_mut(source) {
            Some(reader) => reader.next_record()?,
            None => self.memory.next().copied(),
        };
        if let Some(record) = next {
            self.heap.push(Reverse((record, source)));
        }
        Ok(())
    }
}

impl<T: Record + Ord> Iterator for Merge<'_, T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<io::Result<T>> {
        let Reverse((record, source)) = self.heap.pop()?;
        match self.refill(source) {
            Ok(()) => Some(Ok(record)),
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fixed_record! {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
        struct Pair {
            key: u64,
            tag: u32,
        }
    }

    #[test]
    fn fields_are_stored_in_order_little_endian() {
        let mut bytes = [0u8; 12];
        Pair { key: 1, tag: 2 }.write(&mut bytes);
        assert_eq!(bytes, [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(Pair::read(&bytes), Pair { key: 1, tag: 2 });
        assert_eq!(<Pair as Record>::SIZE, 12);
    }

    fn scrambled(n: u32) -> Vec<Pair> {
        (0..n)
            .map(|i| Pair {
                key: u64::from(i.wrapping_mul(2_654_435_761) % 1000),
                tag: i,
            })
            .collect()
    }

    #[test]
    fn sorter_spills_runs_and_merges_them_in_order_twice() {
        let records = scrambled(10_000);
        let mut sorter = Sorter::with_buffer(12 * 700);
        for &r in &records {
            sorter.push(r).unwrap();
        }
        let sorted = sorter.finish().unwrap();
        assert!(sorted.spilled());
        assert_eq!(sorted.len(), 10_000);
        let mut expected = records.clone();
        expected.sort();
        for _ in 0..2 {
            let merged: Vec<Pair> = sorted.iter().unwrap().map(Result::unwrap).collect();
            assert_eq!(merged, expected);
        }
    }

    #[test]
    fn small_sorter_stays_in_memory() {
        let mut sorter = Sorter::default();
        for r in scrambled(100) {
            sorter.push(r).unwrap();
        }
        let sorted = sorter.finish().unwrap();
        assert!(!sorted.spilled());
        let merged: Vec<Pair> = sorted.iter().unwrap().map(Result::unwrap).collect();
        assert!(merged.windows(2).all(|w| w[0] <= w[1]) && merged.len() == 100);
    }

    #[test]
    fn sorted_runs_pushed_whole_merge_with_the_rest() {
        let mut sorter = Sorter::with_buffer(12 * 3);
        sorter
            .push_sorted_run(&[1, 5, 9].map(|key| Pair { key, tag: 0 }))
            .unwrap();
        for key in [8, 2, 7, 3] {
            sorter.push(Pair { key, tag: 1 }).unwrap();
        }
        let keys: Vec<u64> = sorter
            .finish()
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| r.unwrap().key)
            .collect();
        assert_eq!(keys, [1, 2, 3, 5, 7, 8, 9]);
    }

    #[test]
    fn log_reads_back_in_order_and_by_position_across_the_spill() {
        let records = scrambled(5_000);
        let mut log = RecordLog::with_buffer(12 * 333);
        for &r in &records {
            log.push(r).unwrap();
        }
        assert_eq!(log.len(), 5_000);
        let mut read = Vec::new();
        log.for_each(|i, r| read.push((i, r))).unwrap();
        assert!(read.iter().enumerate().all(|(i, (j, _))| i as u64 == *j));
        assert_eq!(
            read.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            records
        );
        for i in [0u64, 332, 333, 4_994, 4_999] {
            assert_eq!(log.get(i).unwrap(), Some(records[i as usize]));
        }
        // Ranges on disk, across the boundary into memory, in memory, past the end.
        for (start, count) in [
            (0u64, 10u64),
            (4_990, 8),
            (4_994, 3),
            (4_998, 5),
            (6_000, 2),
        ] {
            let end = ((start + count) as usize).min(records.len());
            let expected = records.get(start as usize..end).unwrap_or(&[]);
            assert_eq!(log.get_range(start, count).unwrap(), expected);
        }
        assert_eq!(log.get(5_000).unwrap(), None);
    }
}
