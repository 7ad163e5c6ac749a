//! The CDR file: one JSON object per line, appended, rotated by size.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use switchyard_proto::dialog::CallRecord;

/// An open CDR file. Writes are buffered; [`CdrFile::flush`] after each
/// batch puts them on disk (a crash loses at most the batch in hand).
pub struct CdrFile {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    rotate_bytes: u64,
    keep: u32,
}

impl CdrFile {
    pub fn open(path: &Path, rotate_bytes: u64, keep: u32) -> io::Result<CdrFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(CdrFile {
            path: path.to_owned(),
            out: BufWriter::new(file),
            size,
            rotate_bytes,
            keep,
        })
    }

    pub fn write(&mut self, record: &CallRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.rotate_bytes {
            self.rotate()?;
        }
        self.out.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// `cdr.jsonl` → `cdr.jsonl.1`, `.1` → `.2`, …; the oldest beyond
    /// `keep` is removed.
    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let numbered = |n: u32| {
            let mut name = self.path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> CallRecord {
        CallRecord {
            id: format!("n1-{n}"),
            tenant: "acme".into(),
            call_id: format!("c{n}"),
            caller: "a@acme.test".into(),
            callee: "b@acme.test".into(),
            start_ms: 1,
            answer_ms: Some(2),
            end_ms: Some(3),
            duration_ms: 1,
            status: 200,
            end_reason: Some(switchyard_proto::dialog::EndReason::CallerBye),
            session_expires: None,
        }
    }

    #[test]
    fn lines_are_json_and_the_file_rotates_at_its_size() {
        let dir = std::env::temp_dir().join(format!("sy-cdr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("cdr.jsonl");
        let mut file = CdrFile::open(&path, 600, 2).unwrap();
        for n in 0..10 {
            file.write(&record(n)).unwrap();
        }
        file.flush().unwrap();
        let current = std::fs::read_to_string(&path).unwrap();
        let last: serde_json::Value =
            serde_json::from_str(current.lines().last().unwrap()).unwrap();
        assert_eq!(last["id"], "n1-9");
        assert_eq!(last["end_reason"], "caller-bye");
        assert!(current.len() <= 600);
        assert!(dir.join("cdr.jsonl.1").exists());
        assert!(dir.join("cdr.jsonl.2").exists());
        assert!(
            !dir.join("cdr.jsonl.3").exists(),
            "only `keep` rotated files"
        );
        let all: usize = ["cdr.jsonl", "cdr.jsonl.1", "cdr.jsonl.2"]
            .iter()
            .map(|f| {
                std::fs::read_to_string(dir.join(f))
                    .unwrap()
                    .lines()
                    .count()
            })
            .sum();
        assert!(all < 10, "the oldest lines were rotated away");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
