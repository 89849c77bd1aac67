//! Turning the command line's PATH arguments into a stream of files to scan.
//!
//! A file named on the command line is always scanned (and reported, even when it is not an
//! image). Inside a directory, a file is scanned when its content or its extension says image,
//! so that a PNG named `.dat` is found and a corrupt `.jpg` is reported, while `README.txt` is
//! skipped and only counted.

use std::fs::File;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use crossbeam_channel::Sender;

const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jfif", "png", "webp", "gif", "bmp", "tif", "tiff",
];

/// One thing to report on: a file to scan, or a path that could not be walked.
#[derive(Debug)]
pub enum Input {
    File {
        index: u64,
        path: PathBuf,
    },
    Unreadable {
        index: u64,
        path: PathBuf,
        error: String,
    },
}

impl Input {
    pub fn index(&self) -> u64 {
        match self {
            Input::File { index, .. } | Input::Unreadable { index, .. } => *index,
        }
    }
}

/// Walks `args` in order, sending every input to `tx` and calling `found` for each. Returns
/// how many directory entries were skipped as not images.
pub fn walk(args: &[String], tx: &Sender<Input>, found: &dyn Fn()) -> u64 {
    let mut walker = Walker {
        tx,
        found,
        next: 0,
        skipped: 0,
    };
    for arg in args {
        if arg == "-" {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                match line {
                    Ok(line) if !line.trim().is_empty() => walker.argument(Path::new(line.trim())),
                    Ok(_) => {}
                    Err(err) => {
                        walker.unreadable(PathBuf::from("-"), format!("reading stdin: {err}"))
                    }
                }
            }
        } else {
            walker.argument(Path::new(arg));
        }
    }
    walker.skipped
}

struct Walker<'a> {
    tx: &'a Sender<Input>,
    found: &'a dyn Fn(),
    next: u64,
    skipped: u64,
}

impl Walker<'_> {
    fn send(&mut self, make: impl FnOnce(u64) -> Input) {
        let input = make(self.next);
        self.next += 1;
        (self.found)();
        // A closed channel means the consumer stopped (an output error); nothing to do.
        let _ = self.tx.send(input);
    }

    fn file(&mut self, path: PathBuf) {
        self.send(|index| Input::File { index, path });
    }

    fn unreadable(&mut self, path: PathBuf, error: String) {
        self.send(|index| Input::Unreadable { index, path, error });
    }

    fn argument(&mut self, path: &Path) {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => self.directory(path),
            Ok(_) => self.file(path.to_path_buf()),
            Err(err) => self.unreadable(path.to_path_buf(), err.to_string()),
        }
    }

    fn directory(&mut self, root: &Path) {
        let entries = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name();
        for entry in entries {
            match entry {
                Ok(entry) if entry.file_type().is_dir() => {}
                Ok(entry) => {
                    if looks_like_image(entry.path()) {
                        self.file(entry.into_path());
                    } else {
                        self.skipped += 1;
                    }
                }
                Err(err) => {
                    let path = err.path().unwrap_or(root).to_path_buf();
                    let reason = err
                        .io_error()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| err.to_string());
                    self.unreadable(path, reason);
                }
            }
        }
    }
}

/// An image by extension, or by its first bytes. Unreadable files count as images so that the
/// read error is reported rather than the file silently skipped.
fn looks_like_image(path: &Path) -> bool {
    let by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    if by_name {
        return true;
    }
    let mut head = Vec::with_capacity(32);
    match File::open(path).and_then(|f| f.take(32).read_to_end(&mut head)) {
        Ok(_) => facade_image::sniff_format(&head).is_some(),
        Err(_) => true,
    }
}
